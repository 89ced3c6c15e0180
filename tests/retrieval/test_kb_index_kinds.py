"""A knowledge base's index kinds (flat, ivf, hnsw): round trips, the cap's eviction, agreement with the
exact flat index, the record in kb.json refusing a damaged or mismatched index, and ``kb build --index``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_failure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kb_hardening import _copy, _rewrite  # the same hand edits of a base the hardening tests make

from semcom_cli.core.errors import SemcomError
from semcom_cli.retrieval.kb import INDEX_KINDS, KnowledgeBase, content_digest, index_settings

DIM = 384


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, seed: int, topics: int = 100) -> np.ndarray:
    """Unit rows gathered around ``topics`` centres, as sentence embeddings gather by subject (random
    isotropic rows have no structure an approximate index could use, nor do real embeddings lack one)."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((topics, DIM)))
    return _unit(centres[rng.integers(0, topics, n)] + 0.06 * rng.standard_normal((n, DIM)))


def _texts(n: int, start: int = 0) -> list[str]:
    return [f"Entry number {i}." for i in range(start, start + n)]


def _queries(vectors: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Base rows with noise: what a received, slightly damaged message looks like."""
    rng = np.random.default_rng(seed)
    rows = vectors[rng.choice(len(vectors), count, replace=False)]
    return _unit(rows + 0.03 * rng.standard_normal(rows.shape))


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return _clustered(3000, seed=1)


@pytest.fixture(scope="module")
def bases(vectors, tmp_path_factory) -> dict[str, Path]:
    """A saved 3,000-entry base of each kind."""
    folders = {}
    for kind in INDEX_KINDS:
        kb = KnowledgeBase("global", index=kind)
        kb.add(_texts(len(vectors)), vectors)
        folders[kind] = tmp_path_factory.mktemp(kind) / f"{kind}.kb"
        kb.save(folders[kind])
    return folders


def _swap_index(folder: Path, other: Path) -> None:
    """Put ``other``'s index file in ``folder``, with kb.json's hashes made to match it (so only the kind
    check can tell)."""
    shutil.copyfile(other / "index.faiss", folder / "index.faiss")
    digest = hashlib.sha256((folder / "index.faiss").read_bytes()).hexdigest()
    _rewrite(folder, lambda side: side.__setitem__("index_sha256", digest))


def _top(kb: KnowledgeBase, queries: np.ndarray, k: int = 3) -> list[set[str]]:
    return [{text for _, text in row} for row in kb.search(queries, k)]


# round trips and agreement ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_each_kind_round_trips_with_the_same_results(bases, vectors, kind):
    kb = KnowledgeBase.load(bases[kind])
    side = json.loads((bases[kind] / "kb.json").read_text())
    assert side["index"]["kind"] == kind and kb.index_settings == side["index"]
    if kind == "ivf":  # chosen from the count: ≈ 4·√n lists, at most n / 39; nprobe nlist/16, at least 32
        assert side["index"] == {"kind": "ivf", "nlist": 76, "nprobe": 32, "seed": 0}
    queries = _queries(vectors, 50, seed=2)
    built = KnowledgeBase("global", index=kind)
    built.add(_texts(len(vectors)), vectors)
    again = KnowledgeBase.load(bases[kind])
    assert kb.search(queries, 5) == again.search(queries, 5)
    if kind != "hnsw":  # flat is exact; ivf's seeded k-means gives the same lists (hnsw's build is threaded)
        assert kb.search(queries, 5) == built.search(queries, 5)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_agree_with_flat_on_99_percent_of_queries(bases, vectors, kind):
    queries = _queries(vectors, 500, seed=3)
    exact = _top(KnowledgeBase.load(bases["flat"]), queries)
    approximate = _top(KnowledgeBase.load(bases[kind]), queries)
    agreement = np.mean([a == b for a, b in zip(exact, approximate)])
    assert agreement >= 0.99, agreement


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_a_capped_base_evicts_the_oldest_and_stays_in_step(tmp_path, kind):
    vectors = _clustered(900, seed=4, topics=30)
    kb = KnowledgeBase("local", user="ana", cap=500, index=kind)
    assert kb.add(_texts(400), vectors[:400]) == 0
    assert kb.add(_texts(500, start=400), vectors[400:]) == 400
    assert kb.entries == _texts(500, start=400) and kb.index.ntotal == 500
    kb.save(tmp_path / "ana.kb")
    for base in (kb, KnowledgeBase.load(tmp_path / "ana.kb")):
        found = [row[0][1] for row in base.search(vectors[400:], 1)]
        assert np.mean([f == t for f, t in zip(found, base.entries)]) >= 0.99
    assert not any(text in kb.entries for text in _texts(400))


def test_an_ivf_base_saved_empty_is_trained_by_its_first_entries(tmp_path):
    kb = KnowledgeBase("global", index={"kind": "ivf", "nprobe": 4})
    kb.save(tmp_path / "empty.kb")
    kb = KnowledgeBase.load(tmp_path / "empty.kb")
    assert kb.search(_clustered(1, seed=5), 3) == [[]]
    vectors = _clustered(800, seed=6, topics=20)
    kb.add(_texts(800), vectors)
    assert kb.index_settings == {"kind": "ivf", "nlist": 20, "nprobe": 4, "seed": 0}
    kb.save(tmp_path / "empty.kb")
    assert KnowledgeBase.load(tmp_path / "empty.kb").search(vectors[:3], 1)[0][0][1] == "Entry number 0."


def test_a_base_without_the_index_field_reads_as_flat(bases, tmp_path):
    folder = _copy(bases["flat"], tmp_path)
    _rewrite(folder, lambda side: side.pop("index"))  # as a base written before the choice existed
    assert KnowledgeBase.load(folder).index_settings == {"kind": "flat"}


@pytest.mark.parametrize("spec, message", [
    ("annoy", "unknown index kind 'annoy'"),
    ({"kind": "ivf", "m": 8}, "no setting 'm'"),
    ({"kind": "hnsw", "m": 0}, "m must be a whole number"),
    ({"kind": "hnsw", "ef_search": True}, "ef_search must be"),
    ({"kind": "ivf", "nprobe": 2.5}, "nprobe must be"),
    (["ivf"], "must name its kind"),
])
def test_bad_index_settings_are_refused(spec, message):
    with pytest.raises(SemcomError, match=message):
        index_settings(spec)


# damage ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, edit, message", [
    ("ivf", lambda side: side.__setitem__("index", {"kind": "flat"}), "not the flat index kb.json records"),
    ("hnsw", lambda side: side.__setitem__("index", {"kind": "ivf", "nlist": 76, "nprobe": 9, "seed": 0}),
     "not the ivf index kb.json records"),
    ("flat", lambda side: side.__setitem__("index", {"kind": "hnsw", "m": 16, "ef_construction": 40,
                                                     "ef_search": 64}), "not the hnsw index kb.json records"),
    ("ivf", lambda side: side["index"].__setitem__("nlist", 77), "not the ivf index"),
    ("hnsw", lambda side: side["index"].__setitem__("m", 32), "not the hnsw index"),
    ("ivf", lambda side: side.pop("index"), "not the flat index"),
    ("ivf", lambda side: side.__setitem__("index", {"kind": "scann"}), "unknown index kind 'scann'"),
    ("ivf", lambda side: side.__setitem__("index", "ivf"), "must name its kind"),
    ("hnsw", lambda side: side["index"].pop("ef_search"), "records m, ef_construction, ef_search"),
    ("ivf", lambda side: side["index"].__setitem__("nprobe", -1), "nprobe must be"),
])
def test_a_recorded_kind_that_disagrees_with_the_index_is_one_line(bases, tmp_path, semcom, kind, edit, message):
    folder = _copy(bases[kind], tmp_path)
    _rewrite(folder, edit)  # re-hashed: only the index checks can refuse it
    with pytest.raises(SemcomError, match="index"):
        KnowledgeBase.load(folder)
    assert_clean_failure(semcom("kb", "info", folder), message)


settings_values = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                            st.text(max_size=8), st.sampled_from([0, 1, 5, 9, 16, 40, 64, 65_536, 65_537]))
index_records = st.one_of(
    settings_values,
    st.lists(settings_values, max_size=3),
    st.fixed_dictionaries({"kind": st.sampled_from(["flat", "ivf", "hnsw", "IVF", "", "pq"])},
                          optional={key: settings_values for key in ("nlist", "nprobe", "seed", "m",
                                                                     "ef_construction", "ef_search", "x")}))


def test_any_index_record_loads_consistently_or_is_one_line(tmp_path):
    kb = KnowledgeBase("global", index="ivf")
    kb.add(_texts(200), _clustered(200, seed=7, topics=5))  # nlist 5, nprobe 5
    kb.save(tmp_path / "small.kb")
    folder = tmp_path / "small.kb"
    valid = json.loads((folder / "kb.json").read_text())

    @settings(max_examples=150, deadline=3000, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(record=index_records)
    def check(record):
        side = dict(valid, index=record)
        side["sha256"] = content_digest(side)
        (folder / "kb.json").write_text(json.dumps(side, allow_nan=True))
        try:
            loaded = KnowledgeBase.load(folder)
        except SemcomError as err:
            assert "\n" not in str(err) and len(str(err)) < 400
            return
        # what loads is what was recorded and fits the file (nprobe and seed may differ: the lists are the same)
        assert loaded.index_settings == record and record["nlist"] == valid["index"]["nlist"]
        assert loaded.index.nprobe == record["nprobe"] and len(loaded.search(_clustered(2, seed=8), 3)[0]) == 3

    check()


def test_an_edited_index_record_without_its_hash_is_refused(bases, tmp_path, semcom):
    folder = _copy(bases["hnsw"], tmp_path)
    _rewrite(folder, lambda side: side["index"].__setitem__("ef_search", 8), rehash=False)
    assert_clean_failure(semcom("kb", "query", folder, "rain"), "no longer match its hash")


@pytest.mark.parametrize("kind, other", [("ivf", "flat"), ("flat", "hnsw"), ("hnsw", "ivf")])
def test_another_kinds_index_file_is_one_line(bases, tmp_path, semcom, kind, other):
    folder = _copy(bases[kind], tmp_path)
    _swap_index(folder, bases[other])
    assert_clean_failure(semcom("kb", "info", folder), f"not the {kind} index kb.json records")


# the command -----------------------------------------------------------------------------------------

def test_kb_build_index_flag(tmp_path, semcom):
    source = tmp_path / "news.txt"
    source.write_text("The council approved the new bridge over the river.\n"
                      "Heavy rain closed three schools in the north this morning.\n"
                      "The bank raised its interest rate by a quarter of a point.\n")
    for kind in INDEX_KINDS:
        folder = tmp_path / f"{kind}.kb"
        extra = ["--ef-search", "32"] if kind == "hnsw" else []
        r = semcom("kb", "build", folder, "--from", source, "--index", kind, *extra)
        assert r.exit_code == 0, r.output
        info = json.loads(semcom("kb", "info", folder, "--json").stdout)
        assert info["index"]["kind"] == kind and info["count"] == 3
        assert "index: " + kind in semcom("kb", "info", folder).stderr
        assert "bridge" in semcom("kb", "query", folder, "a bridge was approved", "-k", "1").stdout
    assert json.loads(semcom("kb", "info", tmp_path / "hnsw.kb", "--json").stdout)["index"]["ef_search"] == 32
    r = semcom("kb", "add", tmp_path / "hnsw.kb", "-t", "Fires near Sydney forced people from their homes.")
    assert r.exit_code == 0, r.output
    for args, message in ((["--index", "annoy"], "unknown index kind 'annoy'"),
                          (["--nlist", "10"], "--nlist applies to --index ivf"),
                          (["--index", "ivf", "--ef-search", "10"], "--ef-search applies to --index hnsw"),
                          (["--index", "ivf", "--nprobe", "0"], "nprobe must be")):
        assert_clean_failure(semcom("kb", "build", tmp_path / "bad.kb", "--from", source, *args), message)
    assert not (tmp_path / "bad.kb").exists()
