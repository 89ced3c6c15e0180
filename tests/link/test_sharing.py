"""Multi-user sharing: the split into public and private tokens, its channel-use accounting,
the shared channel draws, the scenarios, and the CLI's share sets with their bad inputs."""

import json
import random
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_failure, tiny_model

from semcom_cli.channel import make_channel
from semcom_cli.core.errors import SemcomError
from semcom_cli.link.sharing import (
    PublicToken,
    SharePlan,
    encode_parts,
    plan_sharing,
    receive_user,
    repeats_for,
    send_separately,
    send_to_user,
    user_seed,
)


def _tokens(rows: list[list[list[float]]]) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.tensor(rows, dtype=torch.float32)
    return t, torch.ones(t.shape[:2], dtype=torch.long)


# the split -------------------------------------------------------------------------

def test_equal_tokens_go_public_once_and_different_ones_stay_private():
    a, b, c = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    # position 0: users 0 and 2 equal, user 1 different; position 1: all different
    plan = plan_sharing(*_tokens([[a, a], [b, b], [a, c]]), threshold=0.1)
    assert plan.public == (PublicToken(0, (0, 2), 0),)
    assert plan.private_indices(0) == [1] and plan.private_indices(1) == [0, 1] and plan.private_indices(2) == [1]
    assert plan.public_slots(2) == {0: 0} and plan.public_slots(1) == {}


def test_a_group_holds_only_tokens_all_within_the_threshold_of_each_other():
    # a–b and b–c are close, a–c is not: complete linkage must not chain them into one group
    a, b, c = [1.0, 0.0], [1.0, 0.25], [1.0, 0.5]
    plan = plan_sharing(*_tokens([[a], [b], [c]]), threshold=0.3)
    assert len(plan.public) == 1 and len(plan.public[0].users) == 2
    assert plan_sharing(*_tokens([[a], [b], [c]]), threshold=0.6).public[0].users == (0, 1, 2)


def test_padding_positions_are_never_shared():
    t = torch.ones(2, 3, 4)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    plan = plan_sharing(t, mask, threshold=0.0)
    assert [p.index for p in plan.public] == [0] and plan.n_tokens == (3, 1)


def test_threshold_out_of_range_is_refused():
    with pytest.raises(SemcomError, match="threshold"):
        plan_sharing(*_tokens([[[1.0]], [[1.0]]]), threshold=-0.1)


# the accounting --------------------------------------------------------------------

def test_channel_uses_of_one_scene_for_four_users():
    plan = SharePlan((4, 4, 4, 4), tuple(PublicToken(t, (0, 1, 2, 3), 0) for t in range(4)), 0.35)
    uses = plan.channel_uses(4)
    assert uses == {"public": 16, "private": 0, "shared": 16, "separate": 64}


def test_repeats_reach_the_trained_floor():
    assert repeats_for(0.0, -5.0) == 1 and repeats_for(-5.0, -5.0) == 1
    assert repeats_for(-8.0, -5.0) == 2  # 10^0.3 = 1.995 → 2 copies: +3.0 dB
    assert repeats_for(-12.0, -5.0) == 6  # 10^0.7 = 5.01 → 6


def test_a_public_token_costs_its_worst_users_copies_and_never_more_than_separate():
    plan = SharePlan((2, 2, 2), (PublicToken(0, (0, 1), 0), PublicToken(1, (0, 1, 2), 2)), 0.35)
    assert plan.public_repeats([1, 1, 6]) == [1, 6]
    uses = plan.channel_uses(4, [1, 1, 6])
    # public: token 0 once (users 0, 1 need 1 copy), token 1 six times; private: user 2's token 0, 6 copies
    assert uses["public"] == (1 + 6) * 4 and uses["private"] == (1 + 1 + 6) * 4 - 2 * 4
    assert uses["separate"] == (2 + 2 + 12) * 4
    rng = random.Random(0)
    for _ in range(300):  # any plan, any repeats: sharing never costs more than sending separately
        n = rng.randint(1, 8)
        lengths = tuple(rng.randint(1, 4) for _ in range(n))
        public = []
        for t in range(4):
            users = [u for u in range(n) if lengths[u] > t and rng.random() < 0.6]
            if len(users) >= 2:
                public.append(PublicToken(t, tuple(users), users[0]))
        plan = SharePlan(lengths, tuple(public), 0.35)
        uses = plan.channel_uses(3, [rng.randint(1, 8) for _ in range(n)])
        assert uses["shared"] <= uses["separate"]


# the channel -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    model, _ = tiny_model()
    return model


def test_share_packets_are_whole_packets_with_every_token_at_power_one(tiny, test_data):
    tokens, mask = tiny.image_tokens(test_data.batch_images([0, 0, 5]))
    plan = plan_sharing(tokens, mask, threshold=0.0)
    assert [p.users for p in plan.public] == [(0, 1), (0, 1)]
    packets = encode_parts(tiny, tokens, plan, "image")
    whole = tiny.encode(tokens, mask, "image")
    assert packets.scale == 1.0
    for part in (packets.public, *packets.private):  # equal power per token, in every part
        if part.shape[0]:
            assert torch.allclose(part.pow(2).sum(-1).mean(-1), torch.ones(part.shape[0]), atol=1e-5)
    # the public part serves users 0 and 1 whole: it is their packet; user 2 sends its own alone
    assert torch.allclose(packets.public, whole[0], atol=1e-5)
    assert torch.allclose(packets.private[2], whole[2], atol=1e-5)
    assert packets.private[0].shape[0] == 0


def test_a_split_packet_is_coded_as_two_packets(tiny, test_data):
    # users 0 and 1 share only their first token: it is one packet, each user's second token another
    tokens, mask = tiny.image_tokens(test_data.batch_images([0, 5]))
    tokens = tokens.clone()
    tokens[1, 0] = tokens[0, 0]
    plan = plan_sharing(tokens, mask, threshold=0.0)
    assert [(p.index, p.users) for p in plan.public] == [(0, (0, 1))]
    packets = encode_parts(tiny, tokens, plan, "image")
    alone = lambda x: tiny.encode(x[None], torch.ones(1, len(x), dtype=torch.long), "image")[0]  # noqa: E731
    assert torch.allclose(packets.public, alone(tokens[0, :1]), atol=1e-5)
    assert torch.allclose(packets.private[1], alone(tokens[1, 1:]), atol=1e-5)
    # joint coding: the shared token's symbols are not what it gets inside a whole packet
    assert not torch.allclose(packets.public[0], tiny.encode(tokens, mask, "image")[0, 0], atol=1e-4)


def test_each_user_decodes_its_share_set_packets(tiny, test_data):
    tokens, mask = tiny.image_tokens(test_data.batch_images([0, 5, 0]))
    plan = plan_sharing(tokens, mask, threshold=0.0)
    packets = encode_parts(tiny, tokens, plan, "image")
    awgn = make_channel("awgn")
    for u in range(3):
        link = send_to_user(plan, u, packets, 40.0, awgn, user_seed(1, u), [1] * len(plan.public), 1)
        shared = receive_user(tiny, plan, u, link, 40.0, "image")
        # at 40 dB a user's frame decodes to what its parts decode to without noise
        slots = plan.public_slots(u)
        symbols = torch.zeros(plan.n_tokens[u], tiny.symbols_per_token, 2)
        for index, slot in slots.items():
            symbols[index] = packets.public[slot]
        symbols[plan.private_indices(u)] = packets.private[u]
        clean = tiny.decode(symbols[None], torch.tensor([[40.0] * plan.n_tokens[u]]),
                            torch.ones(1, plan.n_tokens[u], dtype=torch.long), "image")[0]
        assert shared.shape == tokens[u].shape and torch.allclose(shared, clean, atol=0.05 * float(clean.abs().max()))


def test_a_user_sees_the_same_draws_in_both_schemes_and_other_users_see_their_own(tiny, test_data):
    tokens, mask = tiny.image_tokens(test_data.batch_images([0, 0]))
    plan = plan_sharing(tokens, mask, threshold=0.0)
    packets = encode_parts(tiny, tokens, plan, "image")
    whole = tiny.encode(tokens, mask, "image")
    rayleigh = make_channel("rayleigh")
    links = [send_to_user(plan, u, packets, 0.0, rayleigh, user_seed(7, u), [1, 1], 1) for u in (0, 1)]
    for u, link in enumerate(links):
        y, h = send_separately(whole[u], 0.0, rayleigh, user_seed(7, u), 1)
        assert torch.allclose(link.public, y, atol=1e-5) and link.gain == h
        shared = receive_user(tiny, plan, u, link, 0.0, "image")
        alone = tiny.receive(y[None], h.reshape(1), 0.0, mask[u : u + 1], "image")[0]
        assert torch.allclose(shared, alone, atol=1e-5)
    assert not torch.allclose(links[0].public, links[1].public)


def test_averaged_copies_lower_the_noise(tiny, test_data):
    tokens, mask = tiny.image_tokens(test_data.batch_images([3]))
    x = tiny.encode(tokens, mask, "image")[0]
    one, _ = send_separately(x, -10.0, make_channel("awgn"), 3, 1)
    ten, _ = send_separately(x, -10.0, make_channel("awgn"), 3, 10)
    assert torch.allclose((ten - x) * 10 ** 0.5, one - x, atol=1e-5)


# scenarios -------------------------------------------------------------------------

def test_scenarios_are_what_they_say(test_data):
    from semcom_cli.link.sharing.scenarios import draw_groups

    caps = test_data.captions
    for group in draw_groups(test_data, "same-scene", 8, 5, seed=0):
        assert len({u.image_id for u in group}) == 1 and len({u.instruction for u in group}) == 8
    for group in draw_groups(test_data, "same-color", 4, 5, seed=0):
        assert len({caps[u.image_id][0] for u in group}) == 1 and len({caps[u.image_id][1] for u in group}) == 3
        assert len({u.image_id for u in group}) == 4
    for group in draw_groups(test_data, "same-shape", 4, 5, seed=0):
        assert len({caps[u.image_id][1] for u in group}) == 1 and len({caps[u.image_id][0] for u in group}) == 4
    for group in draw_groups(test_data, "distinct", 3, 5, seed=0):
        assert len({caps[u.image_id][0] for u in group}) == 3 and len({caps[u.image_id][1] for u in group}) == 3
    for group in draw_groups(test_data, "same-objects", 4, 5, seed=0):
        assert len({caps[u.image_id] for u in group}) == 1 and len({u.image_id for u in group}) == 4
    for group in draw_groups(test_data, "unrelated", 4, 5, seed=0):
        for u in group:  # each user's reference answers its own question about its own image
            assert (u.instruction, u.reference) in zip(
                [q for q, i in zip(test_data.questions, test_data.image_ids) if i == u.image_id],
                [a for a, i in zip(test_data.answers, test_data.image_ids) if i == u.image_id])


def test_scenarios_are_seeded_and_stable_when_the_sweep_grows(test_data):
    from semcom_cli.link.sharing.scenarios import draw_groups

    assert draw_groups(test_data, "unrelated", 4, 3, seed=1) == draw_groups(test_data, "unrelated", 4, 6, seed=1)[:3]
    assert draw_groups(test_data, "unrelated", 4, 3, seed=1) != draw_groups(test_data, "unrelated", 4, 3, seed=2)
    with pytest.raises(SemcomError, match="1 to 8"):
        draw_groups(test_data, "unrelated", 9, 1, seed=0)


# the command line ------------------------------------------------------------------

@pytest.fixture
def images(tmp_path) -> list[Path]:
    import easy_vqa

    paths = easy_vqa.get_test_image_paths()
    out = []
    for k, i in enumerate([0, 0, 5, 9]):  # users 0 and 1 see the same scene
        p = tmp_path / f"u{k}.png"
        p.write_bytes(Path(paths[i]).read_bytes())
        out.append(p)
    return out


@pytest.fixture
def share_set(semcom, tiny_checkpoint, images, tmp_path) -> Path:
    out = tmp_path / "enc"
    r = semcom("encode", *images, "--task", "vqa", "--share", "--threshold", "0", "-o", out, "-c", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    return out


def _meta(path: Path) -> dict:
    from semcom_cli.io.semantic import read_semantic

    return read_semantic(str(path)).header.to_json()


def test_share_set_files_say_their_roles(share_set):
    public = _meta(share_set / "public.sem.safetensors")
    assert public["role"] == "public" and public["users"] == [0, 1] and public["n_users"] == 4
    assert [p["users"] for p in public["share_plan"]["public"]] == [[0, 1], [0, 1]]
    assert public["channel_uses"] == 4  # tiny: 2 tokens × 2 symbols, sent once for two users
    for u, (indices, uses) in enumerate([([], 0), ([], 0), ([0, 1], 4), ([0, 1], 4)]):
        meta = _meta(share_set / f"user-{u}.sem.safetensors")
        assert meta["role"] == "private" and meta["user"] == u and meta["share_id"] == public["share_id"]
        assert meta["token_indices"] == indices and meta["channel_uses"] == uses
    assert sorted(p.name for p in share_set.iterdir()) == [
        "public.sem.safetensors", *(f"user-{u}.sem.safetensors" for u in range(4))]


def test_transmit_with_per_user_snrs_and_decode_each_user(semcom, share_set, tiny_checkpoint, tmp_path):
    rx = tmp_path / "rx"
    r = semcom("transmit", share_set, "-o", rx, "--snr", "0,5,10,-12", "--channel", "awgn,rayleigh,awgn,awgn",
               "--seed", "3")
    assert r.exit_code == 0, r.output
    # public 4 uses (users 0, 1) + private 4 (user 2) + 4 × 6 copies (user 3, below the −5 dB floor)
    # against 4 + 4 + 4 + 24 sent separately
    assert "public 4 channel uses, private 28; 32 in all against 36 sent separately" in " ".join(r.stderr.split())
    for u, (snr, channel) in enumerate([(0.0, "awgn"), (5.0, "rayleigh"), (10.0, "awgn"), (-12.0, "awgn")]):
        meta = _meta(rx / f"user-{u}.sem.safetensors")
        assert (meta["stage"], meta["snr_db"], meta["channel"], meta["user"]) == ("transmit", snr, channel, u)
        assert meta["repeats"] == (6 if snr < -5 else 1)
        assert _meta(rx / f"public.user-{u}.sem.safetensors")["repeats"] == [1, 1]  # users 0, 1 need no copies
    for u in range(4):
        args = ["decode", rx / f"user-{u}.sem.safetensors", "-q", "what shape is in the image?", "--json",
                "-c", tiny_checkpoint]
        if u < 2:
            args += ["--public", rx / f"public.user-{u}.sem.safetensors"]
        r = semcom(*args)
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["user"] == u


def test_decoding_needs_this_users_copy_of_this_sets_public_file(semcom, share_set, images, tiny_checkpoint,
                                                                tmp_path):
    rx = tmp_path / "rx"
    assert semcom("transmit", share_set, "-o", rx, "--snr", "5").exit_code == 0
    q = ["-q", "what shape?", "-c", tiny_checkpoint]
    assert_clean_failure(semcom("decode", rx / "user-0.sem.safetensors", *q), "needs its copy of the public file")
    assert_clean_failure(semcom("decode", rx / "user-0.sem.safetensors", "--public",
                                rx / "public.user-1.sem.safetensors", *q), "user 1's copy", "not user 0's")
    assert_clean_failure(semcom("decode", rx / "public.user-0.sem.safetensors", *q), "a public file")
    # another share set (other images, so another share id) does not fit
    other, rx2 = tmp_path / "enc2", tmp_path / "rx2"
    assert semcom("encode", images[0], images[0], images[3], "--task", "vqa", "--share", "-o", other,
                  "-c", tiny_checkpoint).exit_code == 0
    assert semcom("transmit", other, "-o", rx2, "--snr", "5").exit_code == 0
    assert_clean_failure(semcom("decode", rx / "user-0.sem.safetensors", "--public",
                                rx2 / "public.user-0.sem.safetensors", *q), "belongs to share set")
    assert_clean_failure(semcom("decode", rx / "user-0.sem.safetensors", "--public",
                                rx / "missing.sem.safetensors", *q), "no such file")


def test_bad_share_inputs_fail_cleanly_and_write_nothing(semcom, share_set, images, tiny_checkpoint, tmp_path):
    out = tmp_path / "never"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert_clean_failure(semcom("encode", images[0], bad, "--task", "vqa", "--share", "-o", out,
                                "-c", tiny_checkpoint), "bad.png", "not an image")
    assert_clean_failure(semcom("encode", *images, "--task", "vqa", "-o", out, "-c", tiny_checkpoint), "--share")
    assert_clean_failure(semcom("encode", images[0], "--task", "vqa", "--threshold", "0.2", "-o", out / "a",
                                "-c", tiny_checkpoint), "--share only")
    assert_clean_failure(semcom("transmit", share_set, "-o", out, "--channel", "rayleigh-iid"), "block-fading")
    assert_clean_failure(semcom("encode", *images, "--task", "vqa", "--share", "-c", tiny_checkpoint), "folder")
    assert_clean_failure(semcom("transmit", share_set, "-o", out, "--snr", "0,5,10"), "4 users")
    assert_clean_failure(semcom("transmit", share_set / "public.sem.safetensors", "-o", out / "x"), "share set")
    assert not out.exists()
    (share_set / "user-2.sem.safetensors").unlink()
    assert_clean_failure(semcom("transmit", share_set, "-o", out), "user 2's file", "missing")
    assert not out.exists()


def test_evaluate_share_counts_channel_uses_and_costs_one_scene_nothing(semcom, tiny_checkpoint, tmp_path):
    out = tmp_path / "share.json"
    r = semcom("evaluate", "--share", "--users", "1,2", "--scenario", "same-scene", "--limit", "3", "--snr", "0",
               "-c", tiny_checkpoint, "-o", out)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["format"] == "semcom-share-evaluate/1" and doc["run"]["checkpoint"] == "tiny-a"
    one, two = doc["points"]
    assert one["saving"]["mean"] == 0.0 and one["channel_uses"] == {"shared": 4, "separate": 4, "public": 0}
    assert two["saving"]["mean"] == 0.5 and two["channel_uses"]["shared"] == 4 and two["channel_uses"]["separate"] == 8
    # one scene: the public part is each user's own whole packet, on the same draws → the same answers
    assert two["accuracy"]["difference"]["value"] == 0.0 and two["users_changed"] == {"gained": 0, "lost": 0}
    assert (tmp_path / "share-share-saving-awgn-0dB.png").is_file()
    assert_clean_failure(semcom("evaluate", "--share", "--users", "9", "-c", tiny_checkpoint), "--users")
    assert_clean_failure(semcom("evaluate", "--share", "--scenario", "twins", "-c", tiny_checkpoint), "scenario")


def test_same_inputs_and_seed_give_the_same_bytes(semcom, share_set, images, tiny_checkpoint, tmp_path):
    again = tmp_path / "again"
    assert semcom("encode", *images, "--task", "vqa", "--share", "--threshold", "0", "-o", again,
                  "-c", tiny_checkpoint).exit_code == 0
    for f in share_set.iterdir():
        assert (again / f.name).read_bytes() == f.read_bytes()
    for out in ("rx1", "rx2"):
        assert semcom("transmit", share_set, "-o", tmp_path / out, "--snr", "2", "--channel", "rayleigh",
                      "--seed", "9").exit_code == 0
    for f in (tmp_path / "rx1").iterdir():
        assert (tmp_path / "rx2" / f.name).read_bytes() == f.read_bytes()
