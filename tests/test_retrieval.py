"""Hybrid retrieval against a real server, over runbooks written here."""

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from incident_ops import keys
from incident_ops.indexing import records
from incident_ops.indexing.embedder import get_embedder
from incident_ops.indexing.indexer import Indexer
from incident_ops.retrieval import HybridQuery, NothingIndexed, Retriever, ranking
from incident_ops.retrieval.keyword import KeywordIndex, keyword_tokens
from tests.conftest import short_tmpdir

EMBEDDER = get_embedder("minilm")

RUNBOOKS = {
    "queue-backlog.md": """\
# Message queue backlog

## Symptoms

Kafka consumer lag keeps growing on the orders topic; messages wait minutes
before a consumer picks them up.

## Mitigation

Add consumers to the consumer group and raise the partition count.
""",
    "certificates.md": """\
# TLS certificate renewal

## Symptoms

Clients refuse the connection because the server's X.509 certificate is about
to lapse or already has; browsers show an expiry warning.

## Mitigation

Renew the certificate with certbot and reload the edge proxies.
""",
    "dns/resolution.txt": """\
DNS resolution failures
=======================

Symptoms
--------

Lookups return NXDOMAIN or SERVFAIL for internal service names, and pods
cannot reach their dependencies by name.

Mitigation
----------

Restart CoreDNS and check the upstream resolvers in its Corefile.
""",
}


@pytest.fixture
def folder():
    path = short_tmpdir("rb-")
    for name, text in RUNBOOKS.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def index(store, folder: Path):
    return Indexer(store=store, root=folder, embedder=EMBEDDER,
                   show_progress=False).run_pass()


def ask(retriever: Retriever, text: str, mode: str = "hybrid", **options):
    return retriever.execute(HybridQuery.for_text(text, **options), mode=mode)


def test_three_modes_find_the_runbook(toondb, folder):
    store = toondb.store()
    index(store, folder)
    retriever = Retriever(store)

    lag = "consumer lag is growing on the kafka topic"
    for mode in ("hybrid", "vector", "keyword"):
        context = ask(retriever, lag, mode=mode)
        assert context.chunks[0].source == "queue-backlog.md", mode

    # Paraphrase with no shared keyword: only the vector leg can answer.
    paraphrase = "our HTTPS cert will run out soon"
    assert ask(retriever, paraphrase, mode="vector").sources[0] == "certificates.md"
    # A rare exact term: the keyword leg finds it, and only where it occurs.
    keyword = ask(retriever, "NXDOMAIN", mode="keyword")
    assert [c.source for c in keyword.chunks] == ["dns/resolution.txt"]
    assert keyword.chunks[0].heading.startswith("Symptoms")
    assert keyword.chunks[0].title == "DNS resolution failures"


def test_keyword_mode_with_no_matching_term_says_so(toondb, folder):
    store = toondb.store()
    index(store, folder)

    context = ask(Retriever(store), "zeppelin", mode="keyword")

    assert context.chunks == []
    assert "no indexed chunk matches" in context.note


def test_hybrid_lists_a_chunk_found_by_both_legs_once(toondb, folder):
    store = toondb.store()
    index(store, folder)

    context = ask(Retriever(store), "kafka consumer lag", top_k=8)

    ids = [chunk.chunk_id for chunk in context.chunks]
    assert len(ids) == len(set(ids))
    # First in both legs: weighted RRF gives 0.6/61 + 0.4/61.
    assert context.chunks[0].score == pytest.approx(0.6 / 61 + 0.4 / 61)
    scores = [chunk.score for chunk in context.chunks]
    assert scores == sorted(scores, reverse=True)


def test_weights_steer_the_fusion(toondb, folder):
    store = toondb.store()
    index(store, folder)
    retriever = Retriever(store)
    text = "NXDOMAIN certificate"

    keyword_only = retriever.execute(HybridQuery(
        vector_query=text, keyword_query=text, vector_weight=0, keyword_weight=1))
    vector_only = retriever.execute(HybridQuery(
        vector_query=text, keyword_query=text, vector_weight=1, keyword_weight=0))

    assert [c.chunk_id for c in keyword_only.chunks][:2] == [
        c.chunk_id for c in ask(retriever, text, mode="keyword").chunks][:2]
    assert [c.chunk_id for c in vector_only.chunks] == [
        c.chunk_id for c in ask(retriever, text, mode="vector", top_k=8).chunks]


def test_deleted_and_renamed_runbooks_leave_search(toondb, folder):
    store = toondb.store()
    first = index(store, folder)
    retriever = Retriever(store)
    assert "certificates.md" in ask(retriever, "certificate expiry", top_k=8).sources

    (folder / "certificates.md").rename(folder / "tls-renewal.md")
    (folder / "queue-backlog.md").unlink()
    second = index(store, folder)

    assert second.version == first.version + 1
    assert second.removed == 2
    # A rename reuses the stored vectors: nothing is embedded again.
    assert second.embedded == 0
    sources = ask(retriever, "certificate expiry kafka lag", top_k=8).sources
    assert "tls-renewal.md" in sources
    assert "certificates.md" not in sources
    assert "queue-backlog.md" not in sources
    for gone in ("certificates.md", "queue-backlog.md"):
        assert store.get(records.doc_key(records.doc_id(gone))) is None


def test_edited_runbook_is_replaced(toondb, folder):
    store = toondb.store()
    index(store, folder)
    retriever = Retriever(store)
    assert ask(retriever, "quokka", mode="keyword").chunks == []

    path = folder / "queue-backlog.md"
    path.write_text(path.read_text() + "\n## Escalation\n\nPage the quokka team.\n")
    summary = index(store, folder)

    hits = ask(retriever, "quokka", mode="keyword").chunks
    assert [c.source for c in hits] == ["queue-backlog.md"]
    edited = store.get(keys.RUNBOOK_INDEX)["docs"][records.doc_id("queue-backlog.md")]
    # Only the edited runbook was embedded again.
    assert summary.embedded == edited["chunks"]
    assert summary.unchanged == summary.chunks - edited["chunks"] > 0


def test_near_duplicate_chunks_collapse_to_the_best_ranked(toondb, folder):
    shutil.copy(folder / "certificates.md", folder / "certificates-copy.md")
    store = toondb.store()
    index(store, folder)
    retriever = Retriever(store)

    deduped = ask(retriever, "renew the TLS certificate", top_k=8)
    everything = ask(retriever, "renew the TLS certificate", top_k=8, dedup="none")

    texts = [c.text for c in deduped.chunks]
    assert len(texts) == len(set(texts))
    all_texts = [c.text for c in everything.chunks]
    assert len(all_texts) > len(set(all_texts))
    # The survivor of each pair is the better-ranked copy.
    first_of_each = {}
    for chunk in everything.chunks:
        first_of_each.setdefault(chunk.text, chunk.chunk_id)
    assert {c.chunk_id for c in deduped.chunks} <= set(first_of_each.values())


def test_a_collapsed_duplicate_is_named_on_the_chunk_that_kept_it(toondb, folder):
    shutil.copy(folder / "certificates.md", folder / "certificates-copy.md")
    store = toondb.store()
    index(store, folder)
    retriever = Retriever(store)

    context = ask(retriever, "renew the TLS certificate", top_k=8)

    sources = {"certificates.md", "certificates-copy.md"}
    kept = [c for c in context.chunks if c.source in sources]
    assert kept, "a certificate chunk should come back"
    for chunk in kept:
        assert chunk.also_in == tuple(sources - {chunk.source})
    others = [c for c in context.chunks if c.source not in sources]
    assert all(not c.also_in for c in others)
    # Readers see both runbooks: in the source list and in the prompt text.
    assert set(context.sources[:2]) == sources
    assert "also in: " in context.to_markdown()
    assert list(kept[0].to_dict()["also_in"]) == list(kept[0].also_in)


def test_duplicates_merge_into_the_chosen_chunk_they_are_closest_to():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.999, 0.045], [0.03, 0.9995],
                        [0.7071, 0.7071]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    packed = ranking.pack(iter(range(5)), tokens=[10] * 5, vectors=vectors,
                          top_k=3, budget=100, dedup_threshold=0.95)

    assert packed.chosen == [0, 1, 4]
    assert packed.merged == [[2], [3], []]


def test_budget_smaller_than_the_first_chunk_returns_nothing(toondb, folder):
    store = toondb.store()
    index(store, folder)
    retriever = Retriever(store)
    best = ask(retriever, "kafka consumer lag", top_k=1).chunks[0]

    nothing = ask(retriever, "kafka consumer lag", token_budget=best.tokens - 1)
    exact = ask(retriever, "kafka consumer lag", token_budget=best.tokens)

    assert nothing.chunks == [] and nothing.total_tokens == 0
    assert f"smaller than the first chunk ({best.tokens} tokens)" in nothing.note
    assert [c.chunk_id for c in exact.chunks] == [best.chunk_id]
    assert exact.total_tokens == best.tokens


def test_budget_packs_whole_chunks_in_rank_order(toondb, folder):
    store = toondb.store()
    index(store, folder)
    retriever = Retriever(store)
    ranked = ask(retriever, "certificate", top_k=8, token_budget=100_000).chunks
    budget = ranked[0].tokens + ranked[1].tokens + ranked[2].tokens - 1

    packed = ask(retriever, "certificate", top_k=8, token_budget=budget)

    assert [c.chunk_id for c in packed.chunks] == [c.chunk_id for c in ranked[:2]]
    assert packed.total_tokens == ranked[0].tokens + ranked[1].tokens
    assert "stopped at 2 chunks" in packed.note
    assert packed.to_markdown().count("### [") == 2


def test_bm25_still_scores_on_a_tiny_corpus(toondb):
    # Two runbooks: "replica" is in exactly half of them, where the
    # classic BM25 IDF, log((N - n + 0.5) / (n + 0.5)), is zero.
    folder = short_tmpdir("rb-")
    (folder / "a.md").write_text("# Replica lag\n\nThe replica is behind.\n")
    (folder / "b.md").write_text("# Disk\n\nThe disk is full.\n")
    store = toondb.store()
    index(store, folder)

    context = ask(Retriever(store), "replica", mode="keyword")

    assert [c.source for c in context.chunks] == ["a.md"]
    assert context.chunks[0].score > 0
    shutil.rmtree(folder)


def test_keyword_terms_split_identifiers_and_stem():
    assert keyword_tokens("KubePodCrashLooping") == [
        "kubepodcrashloop", "kube", "pod", "crash", "loop"]
    assert "restart" in keyword_tokens("pods keep restarting")
    scores = KeywordIndex(["pod restarts", "disk full"]).scores("restarting pods")
    assert scores[0] > 0 and scores[1] == 0


def test_reader_refreshes_when_the_index_version_moves(toondb, folder):
    store = toondb.store()
    index(store, folder)
    retriever = Retriever(store)
    first_version = retriever.index_version

    (folder / "new.md").write_text("# Quota\n\nThe zorblax quota is exhausted.\n")
    index(store, folder)
    context = ask(retriever, "zorblax", mode="keyword")

    assert context.index_version == first_version + 1
    assert [c.source for c in context.chunks] == ["new.md"]


def test_a_missing_record_is_skipped_not_fatal(toondb, folder, caplog):
    store = toondb.store()
    index(store, folder)
    store.delete(records.doc_key(records.doc_id("certificates.md")))

    with caplog.at_level(logging.WARNING):
        context = ask(Retriever(store), "certificate kafka", top_k=8)

    assert "certificates.md" not in context.sources
    assert "queue-backlog.md" in context.sources
    assert "is missing" in caplog.text


def test_nothing_indexed_says_to_run_the_indexer(toondb):
    retriever = Retriever(toondb.store())

    with pytest.raises(NothingIndexed, match="process_b_indexer.py --once"):
        ask(retriever, "anything")


def test_vectors_round_trip_through_the_record_encoding():
    vectors = np.random.default_rng(7).random((3, 5), dtype=np.float32)

    decoded = records.decode_vectors(records.encode_vectors(vectors), 5)

    assert np.array_equal(decoded, vectors)
    with pytest.raises(ValueError):
        records.decode_vectors(records.encode_vectors(vectors), 4)


def test_manifest_records_embedder_and_documents(toondb, folder):
    store = toondb.store()
    index(store, folder)

    manifest = store.get(keys.RUNBOOK_INDEX)

    assert manifest["embedder"] == EMBEDDER.name and manifest["dim"] == 384
    assert manifest["version"] == 1
    sources = sorted(entry["source"] for entry in manifest["docs"].values())
    assert sources == sorted(RUNBOOKS)
    record = store.get(records.doc_key(records.doc_id("certificates.md")))
    assert record["title"] == "TLS certificate renewal"
    assert len(records.decode_vectors(record["vectors"], 384)) == len(record["chunks"])


@pytest.mark.parametrize("flag, value, message", [
    ("--top-k", "0", "'0' must be greater than 0"),
    ("--top-k", "-1", "'-1' must be greater than 0"),
    ("--budget", "-1", "'-1' must be greater than 0"),
    ("--budget", "lots", "'lots' is not a whole number"),
])
def test_search_counts_must_be_positive_whole_numbers(flag, value, message, capsys):
    from incident_ops.cli import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["search", "x", flag, value])

    assert exited.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err
