"""Issue 35, pictures of any size: the reconstruct link sends a picture as tiles of 64×64 (padded by its
edges, the guide read once over the whole picture) and decodes it at its own size; a 64×64 picture's packet
is what it always was; the tile table is checked; the vqa/caption encoder says when it resizes a picture
and records it. Tiny random codecs for the formats, the shipped checkpoint for the chain through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_clean_failure
from PIL import Image
from test_reconstruct import TinyCodec
from torch.nn.functional import avg_pool2d

from semcom_cli.core.errors import SemcomError
from semcom_cli.data.scenes import referring_queries, scene_at
from semcom_cli.io.patches import PATCH, roi_box
from semcom_cli.io.semantic import SemanticFile
from semcom_cli.io.tiles import (
    MAX_TILES,
    TileGrid,
    cut_tiles,
    pad_to_tiles,
    patch_importance,
    picture_box,
    stitch_tiles,
    tile_grid,
)
from semcom_cli.reconstruct.imaging.pipeline import encode_images
from semcom_cli.reconstruct.packets import decode_image_file, encode_image_file


def _picture(width: int, height: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))


def _save(pixels: torch.Tensor | np.ndarray, path):
    if isinstance(pixels, torch.Tensor):
        pixels = (pixels * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    return path


def _read_png(path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1).float() / 255


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).pow(2).mean()))


# --- tiles -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,grid", [((64, 64), (1, 1)), ((200, 150), (4, 3)), ((128, 128), (2, 2)),
                                       ((1, 1), (1, 1)), ((65, 10), (2, 1))])
def test_tiles_cut_and_stitch_back_to_the_picture(size, grid):
    g = tile_grid(*size)
    assert (g.cols, g.rows) == grid and g.single == (size == (64, 64))
    picture = _picture(*size)
    padded = pad_to_tiles(picture, g)
    tiles = cut_tiles(padded, g)
    assert tiles.shape == (g.count, 3, 64, 64)
    assert torch.equal(stitch_tiles(tiles, g), picture)
    # the padding repeats the edges: no black border for the codec to spend symbols on
    assert torch.equal(padded[:, size[1] - 1:, :size[0]], picture[:, -1:, :].expand(-1, padded.shape[1] - size[1] + 1,
                                                                                     -1))
    assert torch.equal(padded[:, :size[1], -1], picture[:, :, -1])
    if g.cols > 1:  # raster order: tile 1 is the next 64 columns of the first 64 rows
        assert torch.equal(tiles[1], padded[:, :64, 64:128])


def test_a_picture_of_too_many_tiles_is_refused_in_one_line():
    tile_grid(64 * 16, 64 * 16)  # 256 tiles: the limit
    with pytest.raises(SemcomError, match=f"at most {MAX_TILES} tiles") as err:
        tile_grid(64 * 16 + 1, 64 * 16, "big.png")
    assert "\n" not in str(err.value) and "big.png: a picture of 1025×1024 pixels is 17×16 tiles" in str(err.value)


def test_padding_is_never_important_and_an_edge_patch_is_judged_by_what_it_shows():
    g = TileGrid(100, 70)  # 2×2 tiles; the last column of patches holds 4 of the picture's pixels
    probabilities = torch.zeros(70, 100)
    probabilities[:, 96:] = 1.0  # the picture's last 4 columns: fully important
    patches = patch_importance(probabilities, g)
    assert patches.shape == (16, 16)
    assert float(patches[0, 12]) == 1.0  # 4 important pixels of the 4 inside the picture, not 4 of 8
    assert float(patches[:, 13:].max()) == 0.0  # wholly padding
    assert float(patches[8, 12]) == 1.0 and float(patches[9:, :].max()) == 0.0  # rows below 70: padding


def test_the_picture_box_puts_the_tiles_boxes_together():
    from semcom_cli.io.patches import Box

    g = TileGrid(128, 128)
    assert picture_box([None] * 4, g) is None
    assert picture_box([Box(6, 2, 7, 3), Box(0, 2, 1, 4), None, None], g) == [6, 2, 9, 4]
    assert picture_box([None, None, None, Box(0, 0, 0, 0)], g) == [8, 8, 8, 8]


# --- packets: a 64×64 picture as before, other sizes as tiles -----------------------------------------------

def test_a_64x64_picture_gives_the_packet_of_before_tiling():
    model = TinyCodec()
    picture = torch.from_numpy(scene_at("test", 0).image).permute(2, 0, 1).float() / 255
    given = torch.zeros(64, 64)
    given[8:24, 16:40] = 1.0
    for method, mapped in (("importance", given), ("uniform", None)):
        sem, info = encode_image_file(model, picture, "scene.png", None, 512, 0.7, method, 10.0, mapped)
        box = roi_box(avg_pool2d(given[None, None], PATCH)[0, 0]) if method == "importance" else None
        before = encode_images(model, picture[None], [box], 512, 0.7, 10.0, method)[0].stream
        assert torch.equal(sem.tensors["symbols"][:, 0], before)
        assert set(sem.header.image) == {"method", "budget", "roi_share", "side_uses", "snr_feedback"}
        assert info == ({"box": [2, 1, 4, 2]} if method == "importance" else {})


def _received(sem: SemanticFile, channel: str = "none", snr: float = 30.0) -> SemanticFile:
    from semcom_cli.channel import make_channel
    from semcom_cli.link.transmit import transmit_file

    return transmit_file(SemanticFile.from_bytes(sem.to_bytes(), "p.sem"), make_channel(channel), snr, 1)


@pytest.mark.parametrize("channel", ["none", "rayleigh-iid"])
def test_a_200x150_picture_goes_as_12_tiles_and_comes_back_at_its_size(channel):
    model = TinyCodec()
    picture = _picture(200, 150)
    given = torch.zeros(150, 200)
    given[10:40, 150:200] = 1.0  # in tiles 2 and 3 of the first row
    sem, info = encode_image_file(model, picture, "p.png", None, 300, 0.7, "importance", 10.0, given)
    image = sem.header.image
    assert image["size"] == [200, 150] and image["tiles"] == [4, 3] and image["budget"] == 300
    assert len(image["tile_uses"]) == 12 and sum(image["tile_uses"]) == sem.header.channel_uses
    assert image["tile_uses"] == [300] * 12  # each tile spends its whole budget, side information included
    assert info["box"] == [18, 1, 24, 4] and info["tile_boxes"][2] == [2, 1, 7, 4]
    assert info["tile_boxes"][3] == [0, 1, 0, 4] and info["tile_boxes"][0] is None
    decoded, result = decode_image_file(model, _received(sem, channel), "p.sem")
    assert decoded.shape == (3, 150, 200)
    assert result["size"] == [200, 150] and result["tiles"] == [4, 3] and result["channel_uses_per_tile"] == 300
    if channel == "none":  # the boxes arrive: each tile decoded with its own
        assert result["tile_boxes"] == info["tile_boxes"] and result["box_received"] == info["box"]


def test_each_tile_is_decoded_into_its_place():
    model = TinyCodec()
    picture = _picture(200, 150)
    tiled = encode_image_file(model, picture, "p.png", None, 300, 0.7, "uniform", 10.0)[0]
    whole, _ = decode_image_file(model, _received(tiled), "p.sem")
    for top, left in ((64, 128), (0, 0), (128, 192)):  # the last tile is mostly padding: compare what it shows
        tile = pad_to_tiles(picture, tile_grid(200, 150))[:, top:top + 64, left:left + 64].contiguous()
        alone = encode_image_file(model, tile, "t.png", None, 300, 0.7, "uniform", 10.0)[0]
        one, _ = decode_image_file(model, _received(alone), "t.sem")
        assert torch.allclose(whole[:, top:top + 64, left:left + 64], one[:, :150 - top, :200 - left], atol=1e-4)


def test_the_same_picture_and_seed_give_the_same_bytes():
    model = TinyCodec()
    picture = _picture(130, 70)
    one = encode_image_file(model, picture, "p.png", None, 256, 0.7, "uniform", 10.0)[0]
    two = encode_image_file(model, picture.clone(), "p.png", None, 256, 0.7, "uniform", 10.0)[0]
    assert one.to_bytes() == two.to_bytes()


def test_a_picture_of_more_tiles_than_one_batch_keeps_each_tile_with_its_own_box():
    model = TinyCodec()
    picture = _picture(64 * 9 + 1, 64 * 8, seed=2)  # 10×8 = 80 tiles: the encoder takes them 64 at a time
    grid = tile_grid(64 * 9 + 1, 64 * 8)
    given = torch.zeros(512, 577)
    given[7 * 64 + 8:7 * 64 + 30, 64 + 16:64 + 40] = 1.0  # inside tile 71 (row 7, column 1) alone
    sem, info = encode_image_file(model, picture, "p.png", None, 256, 0.7, "importance", 10.0, given)
    assert [t for t, b in enumerate(info["tile_boxes"]) if b is not None] == [71]
    assert info["tile_boxes"][71] == [2, 1, 4, 3]
    uses = sem.header.image["tile_uses"]
    start = sum(uses[:71])
    tile = cut_tiles(pad_to_tiles(picture, grid), grid)[71]
    alone = encode_images(model, tile[None], [roi_box(patch_importance(given, grid)[56:64, 8:16])], 256, 0.7, 10.0)
    assert torch.allclose(sem.tensors["symbols"][start:start + uses[71], 0], alone[0].stream, atol=1e-5)


def _tiled_packet() -> SemanticFile:
    return encode_image_file(TinyCodec(), _picture(200, 150), "p.png", None, 256, 0.7, "uniform", 10.0)[0]


@pytest.mark.parametrize("damage,fragment", [
    ({"tile_uses": [256] * 11 + [200]}, "tiles add up to 3016 channel uses, not the 3072"),
    ({"tile_uses": [256] * 11}, "does not give the channel uses of each of its 12 tiles"),
    ({"tile_uses": [512] * 6}, "does not give the channel uses of each of its 12 tiles"),
    ({"tile_uses": [300, 212] + [256] * 10}, "tile 0's 300 channel uses fit no packet"),
    ({"tiles": [3, 4]}, "not the 4×3 tiles of 64×64 a 200×150 picture takes"),
    ({"size": [200]}, "picture size [200] is not [width, height]"),
    ({"size": [2000, 2000], "tiles": [32, 32]}, "more than 256 tiles"),
    ({"tile_uses": "lots"}, "tile table"),
])
def test_a_corrupt_tile_table_is_refused_in_one_line(semcom, tmp_path, damage, fragment):
    sem = _tiled_packet()
    bad = SemanticFile(sem.tensors, sem.header.model_copy(update={"image": {**sem.header.image, **damage}}))
    (tmp_path / "bad.sem").write_bytes(bad.to_bytes())
    assert_clean_failure(semcom("transmit", tmp_path / "bad.sem", "--snr", "10", "-o", tmp_path / "rx.sem"), fragment)
    assert not (tmp_path / "rx.sem").exists()


def test_a_tiled_packet_reads_back_and_a_single_tile_file_of_before_still_decodes():
    sem = _tiled_packet()
    assert SemanticFile.from_bytes(sem.to_bytes(), "p.sem").header.image["tile_uses"] == [256] * 12
    model = TinyCodec()
    picture = torch.from_numpy(scene_at("test", 0).image).permute(2, 0, 1).float() / 255
    old = encode_image_file(model, picture, "s.png", None, 512, 0.7, "uniform", 10.0)[0]
    assert "size" not in old.header.image
    decoded, result = decode_image_file(model, _received(old), "s.sem")
    assert decoded.shape == (3, 64, 64) and "tiles" not in result


def test_an_importance_map_of_another_size_than_the_picture_is_refused(semcom, tmp_path):
    picture = _save(_picture(128, 128), tmp_path / "p.png")
    Image.new("L", (64, 64)).save(tmp_path / "m64.png")
    r = semcom("encode", picture, "--task", "reconstruct", "--map", tmp_path / "m64.png", "-o", tmp_path / "o.sem")
    assert_clean_failure(r, "an importance map of 64×64 pixels; it must be 128×128, the picture's size")
    big = tmp_path / "big.png"
    Image.new("RGB", (1100, 900)).save(big)
    for args in (("encode", big, "--task", "reconstruct", "--method", "uniform", "-o", tmp_path / "o.sem"),
                 ("guide", big, "-q", "the red circle", "-o", tmp_path / "g.png")):
        assert_clean_failure(semcom(*args), "big.png: a picture of 1100×900 pixels is 18×15 tiles")
    assert not (tmp_path / "o.sem").exists() and not (tmp_path / "g.png").exists()


# --- the vqa/caption encoder reads 64×64: a resize is said and recorded --------------------------------------

@pytest.mark.parametrize("task", ["vqa", "caption"])
def test_the_64x64_encoder_says_it_resized_and_the_header_records_it(semcom, tiny_checkpoint, sample_png, tmp_path,
                                                                    task):
    shape = np.asarray(Image.open(sample_png).convert("RGB"))
    wide = _save(np.asarray(Image.fromarray(shape).resize((100, 80))), tmp_path / "wide.png")
    r = semcom("encode", wide, "--task", task, "-c", tiny_checkpoint, "-o", tmp_path / "w.sem")
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if line.startswith("semcom: note:")]
    assert len(notes) == 1 and notes[0].endswith(f"wide.png is 100×80; the {task} encoder reads 64×64 pictures: "
                                                 "resized"), r.stderr
    assert SemanticFile.from_bytes((tmp_path / "w.sem").read_bytes(), "w").header.resized_from == [100, 80]
    r = semcom("transmit", tmp_path / "w.sem", "--snr", "10", "-o", tmp_path / "w.rx")
    assert r.exit_code == 0 and SemanticFile.from_bytes((tmp_path / "w.rx").read_bytes(), "w").header.resized_from \
        == [100, 80]
    r = semcom("encode", sample_png, "--task", task, "-c", tiny_checkpoint, "-o", tmp_path / "s.sem")
    assert r.exit_code == 0 and "note" not in r.stderr
    assert "resized_from" not in (tmp_path / "s.sem").read_bytes().decode("latin-1")


def test_resized_from_belongs_to_image_files_only():
    sem = _tiled_packet()
    bad = SemanticFile(sem.tensors, sem.header.model_copy(update={"resized_from": [100, 80]}))
    with pytest.raises(SemcomError, match="no copies, share set or resizing"):
        SemanticFile.from_bytes(bad.to_bytes(), "bad.sem")


# --- the shipped checkpoint through the command line ------------------------------------------------------

@pytest.mark.real
def test_a_128x128_scene_through_guide_encode_transmit_decode(semcom, tmp_path):
    scene = scene_at("test", 3, 128)
    path = _save(scene.image, tmp_path / "scene.png")
    named = next(q for q in referring_queries(scene, "test", seed=0) if q.kind == "color" and q.target >= 0)
    query, target = named.text, scene.masks[named.target]
    r = semcom("guide", path, "-q", query, "-o", tmp_path / "map.png", "--json")
    assert r.exit_code == 0, r.output
    guided = json.loads(r.stdout)
    assert Image.open(tmp_path / "map.png").size == (128, 128)
    assert guided["tiles"] == [2, 2] and len(guided["patch_map"]) == 16 and len(guided["patch_map"][0]) == 16
    # the map marks the object the query names: brighter on it than off it
    marked = np.asarray(Image.open(tmp_path / "map.png")).astype(float)
    assert marked[target].mean() > marked[~target].mean() + 100
    sem = tmp_path / "p.sem"
    r = semcom("encode", path, "--task", "reconstruct", "--query", query, "-o", sem)
    assert r.exit_code == 0, r.output
    assert "128×128 picture as 2×2 tiles of 64×64, 512 channel uses per tile" in r.stderr
    header = SemanticFile.from_bytes(sem.read_bytes(), "p").header
    assert header.image["size"] == [128, 128] and header.channel_uses == sum(header.image["tile_uses"]) <= 4 * 512
    assert semcom("transmit", sem, "--snr", "12", "--seed", "2", "-o", tmp_path / "p.rx").exit_code == 0
    r = semcom("decode", tmp_path / "p.rx", "-o", tmp_path / "out.png", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["box_received"] == guided["box"]
    out = _read_png(tmp_path / "out.png")
    assert out.shape == (3, 128, 128)
    assert _psnr(out, torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255) > 20.0


@pytest.mark.real
def test_a_200x150_picture_through_the_command_line_with_a_map_and_uniform(semcom, tmp_path):
    scene = scene_at("test", 1, 128)
    original = np.asarray(Image.fromarray(scene.image).resize((200, 150), Image.Resampling.BILINEAR))
    path = _save(original, tmp_path / "p.png")
    mask = np.zeros((150, 200), np.uint8)
    mask[20:70, 90:160] = 255
    Image.fromarray(mask).save(tmp_path / "map.png")
    expected = torch.from_numpy(original.copy()).permute(2, 0, 1).float() / 255
    for name, args in (("map", ("--map", tmp_path / "map.png")), ("uniform", ("--method", "uniform"))):
        r = semcom("encode", path, "--task", "reconstruct", *args, "--channel-uses", "256", "-o", tmp_path / "p.sem")
        assert r.exit_code == 0, r.output
        assert semcom("transmit", tmp_path / "p.sem", "--snr", "12", "-o", tmp_path / "p.rx", "--force").exit_code == 0
        r = semcom("decode", tmp_path / "p.rx", "-o", tmp_path / f"out-{name}.png", "--json")
        assert r.exit_code == 0, r.output
        result = json.loads(r.stdout)
        out = _read_png(tmp_path / f"out-{name}.png")
        assert out.shape == (3, 150, 200) and result["size"] == [200, 150] and result["tiles"] == [4, 3]
        assert _psnr(out, expected) > 18.0, name
        (tmp_path / "p.sem").unlink()
    assert result["box_received"] is None

