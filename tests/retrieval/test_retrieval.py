"""Retrieval at the receiver (issue 20): knowledge-base files, the local cap, per-user isolation, the
symbol route and its gate, the prompt with retrieved entries, the corpus and retrieval stages, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import assert_clean_failure, tiny_model

SENTENCES = ["The council approved the new bridge over the river.",
             "Heavy rain closed three schools in the north this morning.",
             "The bank raised its interest rate by a quarter of a point.",
             "Firefighters contained the blaze before it reached the town.",
             "The minister said the talks would resume next week."]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from semcom_cli.retrieval import KnowledgeBase

    kb = KnowledgeBase("global")
    kb.add(SENTENCES)
    folder = tmp_path_factory.mktemp("kb") / "global.kb"
    kb.save(folder)
    return folder


def test_a_base_round_trips_through_its_files(base):
    from semcom_cli.retrieval import KnowledgeBase

    kb = KnowledgeBase.load(base)
    assert kb.entries == SENTENCES and kb.kind == "global" and len(kb) == 5
    # nothing pickled: the two files and the (empty) lock file writers take turns on
    assert sorted(p.name for p in base.iterdir()) == [".semcom-kb.lock", "index.faiss", "kb.json"]
    hits = kb.query(["storm shuts schools up north"], 2)[0]
    assert hits[0][1] == SENTENCES[1] and hits[0][0] > hits[1][0]
    again = KnowledgeBase.load(base)
    assert again.query(["interest rates go up"], 1)[0][0][1] == SENTENCES[2]


def _copy(base, tmp_path):
    import shutil

    target = tmp_path / "copy.kb"
    shutil.copytree(base, target)
    return target


@pytest.mark.parametrize("damage, message", [
    ("index", "does not match its side file"),
    ("embedder", "built with another embedder"),
    ("entries", "disagree"),
    ("edited", "no longer match its hash"),
    ("json", "not a knowledge base's side file"),
    ("missing", "not a knowledge base"),
])
def test_a_damaged_or_foreign_base_is_refused_in_one_line(base, tmp_path, semcom, damage, message):
    folder = _copy(base, tmp_path)
    side = json.loads((folder / "kb.json").read_text())
    if damage == "index":
        raw = bytearray((folder / "index.faiss").read_bytes())
        raw[-5] ^= 0xFF
        (folder / "index.faiss").write_bytes(bytes(raw))
    elif damage == "embedder":
        side["embedder"] = {"name": "another-encoder", "dim": 384, "sha256": "0" * 64}
    elif damage == "entries":  # re-hashed, so only the index can tell
        from semcom_cli.retrieval.kb import content_digest

        side["entries"] = side["entries"][:-1]
        side["sha256"] = content_digest(side)
    elif damage == "edited":  # an entry changed by hand: served at its old vector's score unless refused
        side["entries"][0] = "The council rejected the new bridge over the river."
    elif damage == "json":
        (folder / "kb.json").write_text("{not json")
    else:
        (folder / "index.faiss").unlink()
    if damage in ("embedder", "entries", "edited"):
        (folder / "kb.json").write_text(json.dumps(side))
    assert_clean_failure(semcom("kb", "info", folder), message)
    assert_clean_failure(semcom("kb", "query", folder, "rain"), message)


def test_the_local_base_keeps_the_most_recent_entries_under_its_cap(tmp_path):
    from semcom_cli.retrieval import KnowledgeBase

    kb = KnowledgeBase("local", user="ana", cap=3)
    assert kb.add(SENTENCES[:2]) == 0
    assert kb.add(SENTENCES[2:]) == 2  # five entries, cap three: the two oldest go
    assert kb.entries == SENTENCES[2:]
    kb.save(tmp_path / "ana.kb")
    loaded = KnowledgeBase.load(tmp_path / "ana.kb")
    assert loaded.entries == SENTENCES[2:] and loaded.index.ntotal == 3 and loaded.cap == 3
    found = {text for row in loaded.query(SENTENCES, 3) for _, text in row}
    assert found == set(SENTENCES[2:])  # an evicted entry is never found again
    assert loaded.add(["A new message arrived today."]) == 1
    assert loaded.entries[-1] == "A new message arrived today." and SENTENCES[2] not in loaded.entries


def test_entries_with_template_markers_are_refused():
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.retrieval import KnowledgeBase

    kb = KnowledgeBase("global")
    for bad in ["hi <|im_end|> there", "a <sem> b", "   ", "x" * 2001]:
        with pytest.raises(SemcomError):
            kb.add([bad])
    assert len(kb) == 0


def test_the_prompt_shows_retrieved_entries_and_none_leaves_it_as_it_was():
    from semcom_cli.tasks import get_task

    plain = get_task("text").prompt()
    assert get_task("text").prompt(None, []) == plain and get_task("text").prompt(None, None) == plain
    before, after = get_task("text").prompt(None, ["one  entry", "two"])
    assert before == plain[0]
    assert after.startswith("\nRepeat the received sentence.\nRetrieved:\n- one entry\n- two<|im_end|>")


@pytest.fixture(scope="module")
def tiny():
    model, _ = tiny_model(seed=3)
    return model


def _send(model, sentences, snr=30.0, channel="awgn"):
    from semcom_cli.channel import make_channel, seed_channel
    from semcom_cli.retrieval import receive_packets

    seed_channel(0)
    tokens, mask = model.text_tokens(sentences)
    y, h = make_channel(channel, {}).send(model.encode(tokens, mask, "text"), snr)
    return receive_packets(model, y, h, snr, mask)


def test_the_symbol_route_finds_the_sent_entry_and_its_gate_drops_a_planted_mismatch(tiny):
    from semcom_cli.retrieval import KnowledgeBase, Retriever, read_with_retrieval

    sent = SENTENCES[:2]
    right = KnowledgeBase("global")
    right.add(SENTENCES)
    hits = Retriever(right, k=2).retrieve(tiny, _send(tiny, sent))
    assert [row[0].text for row in hits] == sent and all(row[0].score > 0.9 for row in hits)

    # a base holding only wrong sentences, of the same lengths as the sent ones: nothing passes the gate,
    # so the LLM reads the packet as it would with no base at all
    from semcom_cli.data.corpus import split_corpus

    tokenizer = tiny.get_llm().tokenizer

    def count(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    pool = split_corpus(tokenizer, 24, users=2).global_base
    wrong = KnowledgeBase("global")
    wrong.add([next(p for p in pool if count(p) == count(s)) for s in sent])
    packets = _send(tiny, sent)
    ungated = Retriever(wrong, k=2, gate=0.0).retrieve(tiny, packets)
    assert all(row for row in ungated)  # the planted entries are the nearest ones …
    gated = Retriever(wrong, k=2).retrieve(tiny, packets)
    assert gated == [[], []]            # … and the gate refuses them
    answers, first, _ = read_with_retrieval(tiny, ["text", "text"], [None, None], packets, Retriever(wrong, k=2))
    assert answers == first


def test_a_receiver_never_reads_another_users_local_base(tiny):
    from semcom_cli.retrieval import KnowledgeBase, Retriever

    ana, ben = KnowledgeBase("local", user="ana"), KnowledgeBase("local", user="ben")
    ana.add(SENTENCES[:2])
    ben.add(SENTENCES[2:])
    shared = KnowledgeBase("global")
    shared.add(["A sentence everyone knows about the weather."])
    for route in ("symbols", "reading"):
        hits = Retriever(shared, ana, k=3, route=route, gate=0.0).retrieve(
            tiny, _send(tiny, SENTENCES), readings=SENTENCES)
        texts = {h.text for row in hits for h in row}
        assert texts and not texts & set(SENTENCES[2:]), route  # ben's messages never reach ana's receiver
        assert {h.base for row in hits for h in row} <= {"local", "global"}


def test_retriever_refuses_bases_in_the_wrong_role_and_bad_settings():
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.retrieval import KnowledgeBase, Retriever

    shared, own = KnowledgeBase("global"), KnowledgeBase("local", user="ana")
    for args, kwargs in [((own, None), {}), ((None, shared), {}), ((None, None), {}), ((shared,), {"k": 0}),
                         ((shared,), {"route": "psychic"}), ((shared,), {"gate": float("nan")})]:
        with pytest.raises(SemcomError):
            Retriever(*args, **kwargs)


def test_the_corpus_split_is_seeded_and_keeps_documents_apart(tiny):
    from semcom_cli.data.corpus import split_corpus

    tokenizer = tiny.get_llm().tokenizer
    a, b = split_corpus(tokenizer, 24, users=4), split_corpus(tokenizer, 24, users=4)
    assert a.global_base == b.global_base and a.local == b.local and a.neither == b.neither
    held_out = set(a.global_base) | {s for h in a.local for s in h} | set(a.neither)
    assert len(held_out) == len(a.global_base) + sum(map(len, a.local)) + len(a.neither)  # no message twice
    assert not any(s in w for s in held_out for w in a.train[:400])  # training windows are other documents
    assert len({len(h) for h in a.local}) == 1 and len(a.global_base) > 100 and len(a.neither) > 50


@pytest.fixture(scope="module")
def rag_checkpoint(tmp_path_factory, tiny_checkpoint):
    """The tiny checkpoint through the corpus and retrieval stages."""
    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.system import SemcomModel
    from semcom_cli.training.stages import run_stage

    data = EasyVQA.load("train")
    model = SemcomModel.from_pretrained(tiny_checkpoint)
    llm = model.get_llm()
    history = [run_stage(stage, model, llm, data) for stage in ("corpus", "retrieval")]
    folder = tmp_path_factory.mktemp("rag") / "tiny-rag"
    model.save_pretrained(folder, training={"stages": history})
    return folder


def test_the_retrieval_stage_trains_the_adapter_with_entries_in_the_prompt(rag_checkpoint, monkeypatch):
    from semcom_cli.models import prompting

    seen = []
    real = prompting.build_inputs

    def spy(llm, tasks, instructions, sem, sem_mask, answers=None, contexts=None):
        seen.append(contexts)
        return real(llm, tasks, instructions, sem, sem_mask, answers, contexts)

    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.system import SemcomModel
    from semcom_cli.training.stages import run_stage

    monkeypatch.setattr(prompting, "build_inputs", spy)
    model = SemcomModel.from_pretrained(rag_checkpoint, {"train.retrieval.steps": 3})
    summary = run_stage("retrieval", model, model.get_llm(), EasyVQA.load("train"))
    assert summary["steps"] == 3 and summary["stage"] == "retrieval"
    shown = [c for step in seen for c in step if c is not None]
    assert shown and any(len(c) == 2 for c in shown) and any(c == [] for c in shown)  # k entries, and none
    manifest = json.loads((rag_checkpoint / "manifest.json").read_text())
    assert [s["stage"] for s in manifest["training"]["stages"]][-2:] == ["corpus", "retrieval"]


def test_decode_with_bases_records_the_entries_and_updates_the_local_base(rag_checkpoint, tmp_path, semcom):
    from semcom_cli.retrieval import KnowledgeBase

    (tmp_path / "shared.txt").write_text("\n".join(SENTENCES[1:]) + "\n")
    assert semcom("kb", "build", tmp_path / "g.kb", "--from", tmp_path / "shared.txt").exit_code == 0
    assert semcom("kb", "build", tmp_path / "u.kb", "--from", tmp_path / "shared.txt", "--kind", "local",
                  "--user", "ana", "--cap", "4").exit_code == 0
    message = "Heavy rain closed three schools."
    assert semcom("encode", "--task", "text", "--text", message, "-c", rag_checkpoint, "-o",
                  tmp_path / "m.sem").exit_code == 0
    assert semcom("transmit", tmp_path / "m.sem", "--snr", "20", "--seed", "1", "-o", tmp_path / "r.sem").exit_code == 0
    result = semcom("decode", tmp_path / "r.sem", "-c", rag_checkpoint, "--kb", tmp_path / "g.kb", "--kb-local",
                    tmp_path / "u.kb", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert "first_reading" in out and isinstance(out["retrieved"], list)
    local = KnowledgeBase.load(tmp_path / "u.kb")
    if out["answer"].strip():
        assert local.entries[-1] == " ".join(out["answer"].split()) and len(local) == 4  # capped: oldest evicted
    before = (tmp_path / "u.kb" / "kb.json").read_bytes()
    assert semcom("decode", tmp_path / "r.sem", "-c", rag_checkpoint, "--kb-local", tmp_path / "u.kb",
                  "--no-update").exit_code == 0
    assert (tmp_path / "u.kb" / "kb.json").read_bytes() == before

    # bad inputs: one line, nothing written
    for args, fragment in [(["--kb-local", tmp_path / "g.kb"], "a global base"),
                           (["--kb", tmp_path / "u.kb"], "a local base"),
                           (["--kb", tmp_path / "g.kb", "--k", "0"], "--k"),
                           (["--kb", tmp_path / "g.kb", "--retrieval", "psychic"], "route"),
                           (["--kb", tmp_path / "nowhere.kb"], "no such knowledge base")]:
        r = semcom("decode", tmp_path / "r.sem", "-c", rag_checkpoint, *args, "-o", tmp_path / "out.json")
        assert_clean_failure(r, fragment)
        assert not (tmp_path / "out.json").exists()


def test_an_image_packet_is_read_with_the_users_recent_scenes(rag_checkpoint, tmp_path, semcom, sample_png):
    from semcom_cli.retrieval import KnowledgeBase

    (tmp_path / "scenes.txt").write_text("a red triangle\na blue circle\n")
    assert semcom("kb", "build", tmp_path / "scenes.kb", "--from", tmp_path / "scenes.txt", "--kind", "local",
                  "--user", "ana").exit_code == 0
    assert semcom("kb", "build", tmp_path / "g.kb", "--from", tmp_path / "scenes.txt").exit_code == 0
    assert semcom("encode", sample_png, "--task", "vqa", "-c", rag_checkpoint, "-o", tmp_path / "i.sem").exit_code == 0
    assert semcom("transmit", tmp_path / "i.sem", "--snr", "10", "-o", tmp_path / "r.sem").exit_code == 0
    r = semcom("decode", tmp_path / "r.sem", "-q", "what shape is it?", "-c", rag_checkpoint, "--kb-local",
               tmp_path / "scenes.kb", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["recent_scenes"]["scenes"] == 2 and out["caption"].startswith("a ")
    assert KnowledgeBase.load(tmp_path / "scenes.kb").entries[-1] == out["caption"]  # the scene is remembered
    r = semcom("decode", tmp_path / "r.sem", "-q", "what shape is it?", "-c", rag_checkpoint, "--kb", tmp_path / "g.kb")
    assert_clean_failure(r, "--kb-local")


def test_evaluate_rag_reports_three_kinds_and_recall(rag_checkpoint, tmp_path, semcom):
    out = tmp_path / "rag.json"
    r = semcom("evaluate", "--task", "text", "--method", "semantic,rag,rag-reading", "--snr", "20", "--limit", "3",
               "--corpus-users", "2", "-c", rag_checkpoint, "-o", out)
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    kinds = {(p["method"], p["kind"]) for p in result["points"]}
    assert kinds == {(m, k) for m in ("semantic", "rag", "rag-reading") for k in ("global", "local", "neither")}
    rag = {p["kind"]: p for p in result["points"] if p["method"] == "rag"}
    assert rag["global"]["metrics"]["recall@3"]["value"] == 1.0  # 20 dB: the sent entry is the nearest code
    assert rag["local"]["metrics"]["recall@3"]["value"] == 1.0
    assert rag["neither"]["metrics"]["recall@3"]["value"] == 0.0
    assert all(p["n"] == 3 for p in result["points"])
    assert_clean_failure(semcom("evaluate", "--task", "caption", "--method", "rag", "-c", rag_checkpoint), "text")
    assert_clean_failure(semcom("evaluate", "--method", "rag", "--share", "-c", rag_checkpoint), "--share")
    assert_clean_failure(semcom("evaluate", "--method", "rag,digital", "-c", rag_checkpoint), "digital")


def test_kb_cli_builds_adds_and_refuses_bad_input(tmp_path, semcom):
    text = tmp_path / "s.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    r = semcom("kb", "build", tmp_path / "u.kb", "--from", text, "--kind", "local", "--user", "ana", "--cap", "3")
    assert r.exit_code == 0, r.output
    assert semcom("kb", "add", tmp_path / "u.kb", "-t", "One more thing happened.").exit_code == 0
    info = json.loads(semcom("kb", "info", tmp_path / "u.kb", "--json").stdout)
    assert info["count"] == 3 and info["newest"][0] == "One more thing happened." and info["user"] == "ana"
    hits = json.loads(semcom("kb", "query", tmp_path / "u.kb", "a big fire", "-k", "1", "--json").stdout)
    assert hits[0]["text"] == SENTENCES[3]
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    for args, fragment in [(["build", tmp_path / "x.kb", "--from", tmp_path / "nope.txt"], "nope.txt"),
                           (["build", tmp_path / "x.kb", "--from", tmp_path / "empty.txt"], "no sentences"),
                           (["build", tmp_path / "x.kb", "--from", tmp_path / "bin.txt"], "UTF-8"),
                           (["build", tmp_path / "x.kb", "--from", text, "--kind", "local"], "--user"),
                           (["build", tmp_path / "x.kb", "--from", text, "--kind", "team"], "kind"),
                           (["build", tmp_path / "x.kb", "--from", text, "--cap", "0"], "--cap"),
                           (["build", tmp_path / "x.kb", "--from", "corpus:local:99"], "corpus:local:U"),
                           (["build", text, "--from", text], "is the input"),
                           (["build", tmp_path / "bin.txt", "--from", text], "not a folder"),
                           (["add", tmp_path / "u.kb"], "--text"),
                           (["query", tmp_path / "u.kb", "fire", "-k", "0"], "k must be")]:
        assert_clean_failure(semcom("kb", *args), fragment)
    assert not (tmp_path / "x.kb").exists()


def test_recent_scenes_become_a_prior_on_the_caption_codebook():
    from semcom_cli.models.codebook import CAPTIONS, read_packets
    from semcom_cli.retrieval.scenes import caption_prior

    prior = caption_prior(["a red circle", "a red circle", "a blue triangle", "not a caption"], trust=0.8)
    p = prior.exp()
    assert abs(float(p.sum()) - 1) < 1e-6
    red_circle, blue_triangle = CAPTIONS.index(("red", "circle")), CAPTIONS.index(("blue", "triangle"))
    unseen = CAPTIONS.index(("green", "circle"))
    assert p[red_circle] > p[blue_triangle] > p[unseen] > 0  # twice seen > once seen > never seen, never zero
    assert torch.allclose(caption_prior([]).exp(), torch.full((24,), 1 / 24))
    # a packet that says nothing (all-zero tokens) is read as the prior's mixture; a clear one is not moved
    captions = torch.randn(24, 2, 8)
    silent = read_packets(torch.zeros(1, 2, 8), torch.ones(1, 2), captions, 0.1, log_prior=prior)
    assert torch.allclose(silent[0], torch.einsum("c,ctd->td", p, captions), atol=1e-5)
    clear = read_packets(captions[blue_triangle][None] * 50, torch.ones(1, 2), captions, 0.01, log_prior=prior)
    assert torch.allclose(clear[0], captions[blue_triangle], atol=1e-3)


def test_evaluate_vqa_with_recent_scenes(tiny_checkpoint, tmp_path, semcom):
    out = tmp_path / "vqa.json"
    r = semcom("evaluate", "--task", "vqa", "--method", "semantic,rag", "--snr", "0", "--limit", "4",
               "-c", tiny_checkpoint, "-o", out)
    assert r.exit_code == 0, r.output
    points = json.loads(out.read_text())["points"]
    assert {p["kind"] for p in points} == {"local", "neither"} and all(p["n"] == 4 for p in points)
    assert points[0]["semantic"] == points[1]["semantic"]  # the same packets, read once without a prior
    assert_clean_failure(semcom("evaluate", "--task", "vqa", "--method", "rag", "-c", tiny_checkpoint), "semantic,rag")


def test_two_receivers_decoding_at_once_into_one_local_base_both_land(rag_checkpoint, tmp_path, semcom, sample_png):
    """Two `decode --kb-local` processes on one base at the same time: each learned caption is kept (the base
    is read, changed and written under its lock, not saved from a copy read before the other wrote)."""
    import subprocess
    import sys

    from semcom_cli.retrieval import KnowledgeBase

    (tmp_path / "scenes.txt").write_text("a red triangle\na blue circle\n")
    assert semcom("kb", "build", tmp_path / "scenes.kb", "--from", tmp_path / "scenes.txt", "--kind", "local",
                  "--user", "ana").exit_code == 0
    assert semcom("encode", sample_png, "--task", "vqa", "-c", rag_checkpoint, "-o", tmp_path / "i.sem").exit_code == 0
    assert semcom("transmit", tmp_path / "i.sem", "--snr", "10", "-o", tmp_path / "r.sem").exit_code == 0
    command = [sys.executable, "-c", "from semcom_cli.cli.app import main; main()", "decode", str(tmp_path / "r.sem"),
               "-q", "what shape is it?", "-c", str(rag_checkpoint), "--kb-local", str(tmp_path / "scenes.kb"),
               "--json"]
    receivers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [r.communicate(timeout=300) for r in receivers]
    assert [r.returncode for r in receivers] == [0, 0], [err.decode()[-500:] for _, err in outputs]
    captions = [json.loads(out)["caption"] for out, _ in outputs]
    assert KnowledgeBase.load(tmp_path / "scenes.kb").entries == ["a red triangle", "a blue circle", *captions]
