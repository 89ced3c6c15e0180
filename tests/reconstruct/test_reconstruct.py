"""The reconstruct task (MLLM-SC, issue 16): map → allocation accounting, side information, the codec's
stream, its files and training stages, and each bad input. Tiny random codecs; the real checkpoint's
figures are measured by benchmarks/reconstruct.py and checked in test_reconstruct_real.py."""


import numpy as np
import pytest
import torch
from conftest import assert_clean_failure

from semcom_cli.channel import to_complex
from semcom_cli.core.errors import SemcomError
from semcom_cli.data.scenes import REFERENT_VALUES, referring_queries, scene_at
from semcom_cli.io.patches import (
    GRID,
    HI_SYMBOLS,
    LIGHT_SYMBOLS,
    SIDE_USES,
    Box,
    allocate,
    box_of_mask,
    check_budget,
    roi_box,
)
from semcom_cli.reconstruct.imaging.codec import DualPathEncoder, ImageDecoder, pack, unpack
from semcom_cli.reconstruct.imaging.pipeline import decode_streams, encode_images
from semcom_cli.reconstruct.imaging.side import bits_box, box_bits, read_side, side_symbols


class TinyCodec:
    """What the pipeline needs of a reconstruct model: a random codec of width 16."""

    def __init__(self, seed: int = 0):
        torch.manual_seed(seed)
        self.encoder, self.decoder = DualPathEncoder(16).eval(), ImageDecoder(16).eval()
        self.name, self.hash, self.roi_threshold = "tiny", "0" * 64, 0.1


@pytest.mark.parametrize("budget", [88, 256, 512, 1024, 3000])
@pytest.mark.parametrize("share", [0.1, 0.5, 0.7, 0.95])
@pytest.mark.parametrize("box", [Box(2, 3, 4, 5), Box(0, 0, 0, 0), Box(0, 0, GRID - 1, GRID - 1), None])
def test_channel_uses_add_up_with_the_side_information_counted(budget, share, box):
    alloc = allocate(budget, box, share)
    assert alloc.side_uses == SIDE_USES
    data = budget - SIDE_USES
    assert alloc.channel_uses == SIDE_USES + int(alloc.uses.sum()) <= budget
    roi = alloc.roi
    assert (alloc.uses[roi] <= HI_SYMBOLS).all() and (alloc.uses[~roi] <= LIGHT_SYMBOLS).all()
    full = int(roi.sum()) * HI_SYMBOLS + int((~roi).sum()) * LIGHT_SYMBOLS
    if data <= full:  # every use spent unless both paths are full
        assert alloc.channel_uses == budget
    if box is not None and 0 < int((~roi).sum()):
        wanted = min(round(share * data), int(roi.sum()) * HI_SYMBOLS)
        # the ROI gets its share, or more where the background cannot take the rest
        assert int(alloc.uses[roi].sum()) >= wanted
        if int(alloc.uses[~roi].sum()) < int((~roi).sum()) * LIGHT_SYMBOLS:
            assert int(alloc.uses[roi].sum()) == wanted
    # spread evenly: no two patches of one part differ by more than one symbol (unless capped)
    for part in (roi, ~roi):
        if part.any():
            assert int(alloc.uses[part].max() - alloc.uses[part].min()) <= 1


def test_uniform_sends_no_side_information_and_spreads_the_whole_budget():
    alloc = allocate(512, Box(1, 1, 2, 2), 0.7, guided=False)
    assert alloc.side_uses == 0 and not alloc.roi.any()
    assert alloc.channel_uses == 512 and set(alloc.uses.tolist()) == {8}


def test_box_of_patches_from_a_map_and_from_a_mask():
    heat = torch.zeros(GRID, GRID)
    heat[2, 5] = heat[4, 6] = 0.9
    assert roi_box(heat) == Box(5, 2, 6, 4)
    assert roi_box(torch.zeros(GRID, GRID)) is None
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[10:20, 40:50] = True
    assert box_of_mask(mask) == Box(5, 1, 6, 2)
    assert box_of_mask(mask).pixels()[10:20, 40:50].all()


@pytest.mark.parametrize("shape", [(4, 4), (64, 64), (8,), (8, 9)])
def test_a_map_of_the_wrong_size_is_refused(shape):
    with pytest.raises(SemcomError, match="8×8 patches"):
        roi_box(torch.rand(*shape))


def test_budget_limits():
    with pytest.raises(SemcomError, match="channel-uses"):
        check_budget(SIDE_USES + GRID * GRID - 1)
    with pytest.raises(SemcomError, match="channel-uses"):
        check_budget(GRID * GRID * HI_SYMBOLS + 1)


@pytest.mark.parametrize("box", [Box(0, 0, 7, 7), Box(3, 1, 5, 6), Box(7, 7, 7, 7), None])
def test_side_information_round_trips(box):
    assert bits_box(box_bits(box)) == box
    x = side_symbols([box])
    assert x.shape == (1, SIDE_USES) and abs(float(x.abs().pow(2).mean()) - 1) < 1e-5
    assert read_side(x, torch.ones(1, dtype=torch.complex64), 20.0) == [box]


def test_side_bits_that_name_no_box_read_as_no_roi():
    bits = box_bits(Box(1, 1, 2, 2))
    bits[1:4] = torch.tensor([1.0, 1.0, 1.0])  # x0 = 7 > x1
    assert bits_box(bits) is None


def test_pack_and_unpack_are_inverse():
    torch.manual_seed(0)
    hi, light = torch.randn(HI_SYMBOLS, 2, GRID, GRID), torch.randn(LIGHT_SYMBOLS, 2, GRID, GRID)
    alloc = allocate(700, Box(1, 2, 3, 3), 0.6)
    stream = pack(hi, light, alloc)
    assert stream.shape == (int(alloc.uses.sum()), 2)
    hi2, light2 = unpack(stream, alloc)
    for p in range(GRID * GRID):
        k, (r, c) = int(alloc.uses[p]), divmod(p, GRID)
        source, got = (hi, hi2) if alloc.roi[p] else (light, light2)
        assert torch.equal(got[:k, :, r, c], source[:k, :, r, c])
        assert not got[k:, :, r, c].any()


def test_packets_are_streams_at_power_one_and_decode_noiselessly_to_the_same_box():
    model = TinyCodec()
    images = torch.rand(3, 3, 64, 64)
    boxes = [Box(1, 1, 3, 4), None, Box(0, 5, 7, 7)]
    for method in ("importance", "uniform"):
        packets = encode_images(model, images, boxes, 512, 0.7, 10.0, method)
        for p in packets:
            assert p.stream.shape == (p.allocation.channel_uses, 2)
            assert abs(float(to_complex(p.stream).abs().pow(2).mean()) - 1) < 1e-4
        gains = [torch.ones(1, dtype=torch.complex64)] * 3
        out, read = decode_streams(model, [p.stream for p in packets], gains, 30.0, 512, 0.7, method)
        assert out.shape == images.shape and float(out.min()) >= 0 and float(out.max()) <= 1
        assert read == (boxes if method == "importance" else [None] * 3)


def test_same_inputs_give_the_same_stream():
    a, b = TinyCodec(0), TinyCodec(0)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    sa = encode_images(a, images, [Box(1, 1, 2, 2)], 512, 0.7, 5.0)[0].stream
    sb = encode_images(b, images, [Box(1, 1, 2, 2)], 512, 0.7, 5.0)[0].stream
    assert torch.equal(sa, sb)


def test_every_query_names_its_target_alone():
    """The referent a query carries picks out its target among the scene's objects (colour and shape
    fields checked here; where and size are the generator's margins, tested in test_scenes)."""
    for index in range(40):
        scene = scene_at("test", index)
        for q in referring_queries(scene, "test", per_kind=3):
            r = q.referent
            assert all(getattr(r, f) in values for f, values in REFERENT_VALUES.items())
            fits = [i for i, o in enumerate(scene.objects)
                    if (r.color in (None, o.color)) and (r.shape in (None, o.shape))]
            assert q.target in fits
            if r.where is None and r.size is None:
                assert fits == [q.target], (q.text, r)


def test_codec_training_resumes_exactly(tmp_path):
    from semcom_cli.reconstruct.imaging.train import CodecTrain, train_codec
    from semcom_cli.training.partial import load_resume, save_resume
    from semcom_cli.training.trainer import Checkpointing

    cfg = CodecTrain(steps=4, batch_size=2, crops=4, width=16, random_k=0.5)
    keep = Checkpointing(2, lambda state: save_resume(tmp_path, "image-codec", state, settings={}))
    whole, _ = train_codec(cfg, checkpointing=keep, device="cpu")
    state, header = load_resume(tmp_path, "image-codec")
    assert state.step == 2 and header["settings"] == {}
    resumed, _ = train_codec(cfg, checkpointing=Checkpointing(resume=state), device=torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    with pytest.raises(SemcomError, match="is a partial 'image-codec' run, not 'guidance'"):
        load_resume(tmp_path, "guidance")


def test_guidance_training_step_lowers_the_loss():
    from semcom_cli.reconstruct.guidance.train import GuidanceTrain, ScenePool, train_guidance

    pool = ScenePool("train", 8)
    losses = []
    train_guidance(GuidanceTrain(steps=30, batch_size=8, pool=8, lr=3e-3, log_every=1), pool,
                   on_log=lambda step, loss, s: losses.append(loss))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


# --- files and the command line -------------------------------------------------------------------------

def _packet_file(method="importance"):
    from semcom_cli.reconstruct.packets import encode_image_file

    image = torch.from_numpy(scene_at("test", 0).image).permute(2, 0, 1).float() / 255
    model = TinyCodec()
    if method == "importance":  # the guide's map given as a file's map, so no LLM is needed
        given = torch.zeros(64, 64)
        given[8:24, 16:40] = 1.0
        return encode_image_file(model, image, "scene.png", None, 512, 0.7, method, 10.0, given)
    return encode_image_file(model, image, "scene.png", None, 512, 0.7, method, 10.0)


@pytest.mark.parametrize("method", ["importance", "uniform"])
def test_a_packet_file_round_trips_and_is_checked(method, tmp_path):
    from semcom_cli.io.semantic import read_semantic, write_semantic

    sem, info = _packet_file(method)
    assert sem.header.channel_uses == 512 and sem.tensors["symbols"].shape == (512, 1, 2)
    if method == "importance":
        assert info["box"] == [2, 1, 4, 2] and sem.header.image["side_uses"] == SIDE_USES
    write_semantic(tmp_path / "p.sem", sem)
    again = read_semantic(str(tmp_path / "p.sem"), stage="encode")
    assert torch.equal(again.tensors["symbols"], sem.tensors["symbols"])


@pytest.mark.parametrize("damage", ["no_image", "bad_method", "bad_share", "wrong_length", "side_mismatch",
                                    "query_on_vqa"])
def test_a_damaged_reconstruct_header_is_refused(damage, tmp_path):
    from semcom_cli.io.semantic import SemanticFile, read_semantic

    sem, _ = _packet_file()
    header, symbols = sem.header, sem.tensors["symbols"]
    image = dict(header.image)
    if damage == "no_image":
        header = header.model_copy(update={"image": None})
    elif damage == "bad_method":
        header = header.model_copy(update={"image": {**image, "method": "magic"}})
    elif damage == "bad_share":
        header = header.model_copy(update={"image": {**image, "roi_share": 1.5}})
    elif damage == "wrong_length":
        symbols = symbols[:100]
    elif damage == "side_mismatch":
        header = header.model_copy(update={"image": {**image, "side_uses": 0}})
    else:
        header = header.model_copy(update={"task": "vqa", "query": "the red circle"})
    path = tmp_path / "bad.sem"
    path.write_bytes(SemanticFile({"symbols": symbols}, header).to_bytes())
    with pytest.raises(SemcomError):
        read_semantic(str(path))


@pytest.mark.parametrize("args,fragment", [
    (["--task", "vqa", "--query", "the red circle"], "--query is for task reconstruct"),
    (["--task", "caption", "--roi-share", "0.5"], "--roi-share is for task reconstruct"),
    (["--task", "reconstruct", "--query", "   "], "--query is empty"),
    (["--task", "reconstruct"], "needs the user's query"),
    (["--task", "reconstruct", "--query", "the red circle", "--roi-share", "1"], "--roi-share must be between"),
    (["--task", "reconstruct", "--query", "the red circle", "--channel-uses", "20"], "--channel-uses must be"),
    (["--task", "reconstruct", "--query", "the red circle", "--channel-uses", "auto"], "whole number"),
    (["--task", "reconstruct", "--method", "uniform", "--query", "the red circle"], "drop --query"),
    (["--task", "reconstruct", "--method", "fancy", "--query", "x"], "unknown method"),
    (["--task", "reconstruct", "--query", "x", "-q", "what?"], "do not apply to task reconstruct"),
    (["--task", "reconstruct", "--query", "x", "--map", "m.png"], "not both"),
])
def test_bad_reconstruct_flags_fail_cleanly(semcom, args, fragment, tmp_path):
    image = tmp_path / "scene.png"
    from PIL import Image

    Image.fromarray(scene_at("test", 0).image).save(image)
    assert_clean_failure(semcom("encode", image, *args, "-o", tmp_path / "out.sem"), fragment)
    assert not (tmp_path / "out.sem").exists()


def test_a_map_of_the_wrong_size_or_kind_is_refused_by_encode(semcom, tmp_path):
    from PIL import Image

    image = tmp_path / "scene.png"
    Image.fromarray(scene_at("test", 0).image).save(image)
    Image.new("L", (32, 32)).save(tmp_path / "small.png")
    (tmp_path / "text.png").write_text("not a picture")
    for name, fragment in (("small.png", "must be 64×64"), ("text.png", "not an image file")):
        r = semcom("encode", image, "--task", "reconstruct", "--map", tmp_path / name, "-o", tmp_path / "o.sem")
        assert_clean_failure(r, fragment)
    assert not (tmp_path / "o.sem").exists()


def test_a_vqa_checkpoint_is_not_a_reconstruct_checkpoint(semcom, tmp_path, tiny_checkpoint):
    from PIL import Image

    image = tmp_path / "scene.png"
    Image.fromarray(scene_at("test", 0).image).save(image)
    r = semcom("encode", image, "--task", "reconstruct", "--query", "the red circle", "-c", tiny_checkpoint,
               "-o", tmp_path / "o.sem")
    assert_clean_failure(r, "not a reconstruct checkpoint")


def test_evaluate_reconstruct_refuses_what_does_not_apply(semcom):
    assert_clean_failure(semcom("evaluate", "--task", "reconstruct,vqa"), "evaluated on its own")
    assert_clean_failure(semcom("evaluate", "--task", "reconstruct", "--method", "semantic"), "--method")
    assert_clean_failure(semcom("evaluate", "--task", "vqa", "--roi-share", "0.5"), "--roi-share is for")
    assert_clean_failure(semcom("evaluate", "--task", "reconstruct", "--share"), "--share")


class WordReader:
    """A stand-in for the LLM's reading: each word a fixed random vector (no context)."""

    dim = 32

    def __init__(self):
        self.vectors = {}

    def read(self, texts):
        """One token per word (its own random vector), as QueryReader.read returns them."""
        rows = [[self.vectors.setdefault(w, torch.randn(self.dim, generator=torch.Generator().manual_seed(
            sum(map(ord, w)) * 7919 + len(w)))) for w in t.lower().strip("?.!").split()] for t in texts]
        length = max(len(r) for r in rows)
        states, mask = torch.zeros(len(rows), length, self.dim), torch.zeros(len(rows), length, dtype=torch.bool)
        words = torch.full((len(rows), length), -1, dtype=torch.long)
        for i, r in enumerate(rows):
            states[i, : len(r)] = torch.stack(r)
            mask[i, : len(r)] = True
            words[i, : len(r)] = torch.arange(len(r))
        return states, mask, words

    def __call__(self, texts):
        return self.read(texts)[:2]


def test_the_parser_learns_to_read_referents_and_what_it_cannot():
    from semcom_cli.data.scenes import Referent
    from semcom_cli.data.scenes.readings import reading_set
    from semcom_cli.reconstruct.guidance.referent import ReadingThresholds, parse_accuracy, train_parser

    queries = reading_set("train", 60, 200)
    reader = WordReader()
    parser = train_parser(reader, queries, steps=400)
    assert parse_accuracy(parser, reader, queries) > 0.9
    texts = [" ".join(q.text.split()) for q in queries]
    readings = parser.read(texts, *reader.read(texts), ReadingThresholds())
    agree = np.mean([r.known == q.readable for r, q in zip(readings, queries)])
    assert agree > 0.9, agree
    # a phrase of training words in an order no wording uses
    (blue,) = parser.read(["blue the triangle"], *reader.read(["blue the triangle"]), ReadingThresholds())
    assert blue.referent == Referent(color="blue", shape="triangle") and blue.known


def test_the_guide_marks_the_image_and_its_mirror_alike():
    from semcom_cli.data.scenes import Referent
    from semcom_cli.reconstruct.guidance import GuidanceNet, Guide
    from semcom_cli.reconstruct.guidance.guide import mirrored

    assert mirrored(Referent(shape="circle", where="leftmost")) == Referent(shape="circle", where="rightmost")
    assert mirrored(Referent(where="top left")) == Referent(where="top right")
    assert mirrored(Referent(color="red", where="lowest")) == Referent(color="red", where="lowest")
    torch.manual_seed(0)
    net = GuidanceNet(width=8).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    guide = Guide(None, None, net)
    images = torch.rand(2, 3, 64, 64)
    referents = [Referent(where="leftmost"), Referent(color="blue", where="bottom right")]
    # what the guide marks in the mirrored image, for the mirrored referent, is the mirror of its map
    direct = guide.mark(images, referents)
    flipped = guide.mark(images.flip(-1), [mirrored(r) for r in referents])
    assert torch.allclose(direct, flipped.flip(-1), atol=1e-4)
