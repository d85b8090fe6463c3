"""The retrieval benchmark's own logic: queries, ground truth and metrics."""

import json
import logging
import os
from pathlib import Path

import pytest

from bench import retrieval_bench as bench
from bench.retrieval_bench import AlertQuery, ModeResult
from tests.conftest import run_project

RULES = """\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
spec:
  groups:
  - name: storage
    rules:
    - alert: VolumeFillingUp
      annotations:
        summary: Volume is filling up.
        description: The volume claimed by {{ $labels.persistentvolumeclaim }} in
          Namespace {{$labels.namespace}} {{ with $labels.cluster -}} on Cluster
          {{ . }} {{- end }} is only {{ $value | humanizePercentage }} free.
        runbook_url: https://runbooks.example.org/runbooks/storage/volumefillingup
    - alert: NoRunbook
      annotations:
        summary: Nobody wrote a runbook for this one.
    - record: job:up:sum
      expr: sum(up) by (job)
  - name: nodes
    rules:
    - alert: ClockSkew
      annotations:
        summary: Clock skew of {{ printf "%.4g" $value }} seconds.
        description: Skew on {{ $labels.instance }} for
          {{ "43200" | humanizeDuration }}.
        runbook_url: https://runbooks.example.org/runbooks/node/ClockSkew/
"""


def test_every_placeholder_becomes_the_same_neutral_word():
    text = (
        "Pod {{ $labels.namespace }}/{{$labels.pod}} ({{ $labels.container}}) "
        "{{ with $labels.cluster -}} on cluster {{ . }} {{- end }} restarted "
        '{{ printf "%.2f" $value }} times, {{ $value | humanizePercentage }} '
        'of {{ "43200" | humanizeDuration }}.'
    )

    assert bench.neutralize_placeholders(text) == (
        "Pod x / x ( x ) on cluster x restarted some times, some of some ."
    )


def test_text_without_placeholders_only_loses_extra_whitespace():
    assert bench.neutralize_placeholders("  Disk\n is  full. ") == "Disk is full."


def test_a_runbook_url_and_a_runbook_file_have_the_same_key():
    assert bench.document_key(
        "https://runbooks.prometheus-operator.dev/runbooks/node/nodeclockskewdetected"
    ) == "nodeclockskewdetected"
    assert bench.document_key("node/NodeClockSkewDetected.md") == (
        "nodeclockskewdetected"
    )
    assert bench.document_key("copy003/node/NodeClockSkewDetected.md") == (
        "nodeclockskewdetected"
    )
    assert bench.document_key("operator/SyncFailed") == "syncfailed"


def test_alert_rules_become_queries_with_their_runbook(tmp_path: Path, caplog):
    (tmp_path / "storage-rules.yaml").write_text(RULES)
    (tmp_path / "not-a-rule.yaml").write_text("just: [a, list]\n")

    with caplog.at_level(logging.WARNING):
        queries = bench.load_alert_queries(tmp_path)

    assert queries == [
        AlertQuery(
            alert="VolumeFillingUp",
            query="Volume is filling up. The volume claimed by x in Namespace x "
                  "on Cluster x is only some free.",
            runbook="volumefillingup",
        ),
        AlertQuery(
            alert="ClockSkew",
            query="Clock skew of some seconds. Skew on x for some .",
            runbook="clockskew",
        ),
    ]
    assert "skipping not-a-rule.yaml" in caplog.text


def test_a_folder_without_rule_files_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SystemExit, match="no PrometheusRule YAML files"):
        bench.load_alert_queries(tmp_path)


def test_only_alerts_whose_runbook_was_indexed_are_scored():
    queries = [
        AlertQuery("A", "a", "nodedown"),
        AlertQuery("B", "b", "diskfull"),
        AlertQuery("C", "c", "missing"),
    ]

    kept, dropped = bench.answerable(
        queries, ["node/NodeDown.md", "storage/DiskFull.md", "_index.md"]
    )

    assert [query.alert for query in kept] == ["A", "B"]
    assert [query.alert for query in dropped] == ["C"]


def test_chunks_collapse_to_documents_in_first_seen_order():
    sources = ["a/One.md", "b/Two.md", "a/One.md", "copy1/a/one.md", "Three.txt"]

    documents = bench.collapse_to_documents(sources)

    assert documents == ["one", "two", "three"]
    assert bench.first_rank("two", documents) == 2
    assert bench.first_rank("four", documents) is None


def test_metrics_on_a_hand_made_ranking():
    # Ranks of the right document for five queries: first, third, sixth,
    # twelfth (past the MRR cutoff of 10) and not retrieved at all.
    ranks = [1, 3, 6, 12, None]

    metrics = bench.quality_metrics(ranks)

    assert metrics["recall@1"] == pytest.approx(1 / 5)
    assert metrics["recall@3"] == pytest.approx(2 / 5)
    assert metrics["recall@5"] == pytest.approx(2 / 5)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 6) / 5)


def test_metrics_refuse_an_empty_query_set():
    with pytest.raises(ValueError):
        bench.quality_metrics([])


def test_percentile_is_an_observed_value():
    latencies = [float(value) for value in range(1, 101)]

    assert bench.percentile(latencies, 0.50) == 50.0
    assert bench.percentile(latencies, 0.99) == 99.0
    assert bench.percentile([7.0], 0.99) == 7.0


def test_misses_list_the_worst_ranked_alerts_first():
    queries = [AlertQuery(name, name, name.lower()) for name in ("A", "B", "C", "D")]
    result = ModeResult(
        metrics={}, latencies_ms=[1.0] * 4, ranks=[1, 2, None, 5],
        top_documents=[["a"], ["x", "b"], ["x", "y", "z"], ["x", "y", "z"]],
    )

    misses = bench.hybrid_misses(queries, result)

    assert [(miss["alert"], miss["rank"]) for miss in misses] == [
        ("C", None), ("D", 5), ("B", 2)
    ]
    assert misses[0]["top3"] == ["x", "y", "z"]


def test_the_table_has_one_row_per_mode():
    row = {"recall@1": 0.5, "recall@3": 0.75, "recall@5": 1.0, "mrr": 0.625,
           "p50_ms": 3.21, "p99_ms": 12.0}

    table = bench.markdown_table({"hybrid": row, "keyword": row})

    lines = table.splitlines()
    assert lines[0].startswith("| mode | recall@1")
    assert lines[2] == "| hybrid | 0.50 | 0.75 | 1.00 | 0.62 | 3.2 | 12.0 |"
    assert lines[3].startswith("| keyword |")


def test_the_embedding_rate_comes_from_the_indexers_summary_line():
    output = (
        "17:10:21 INFO    incident_ops.indexer: indexing /rb into /db/toondb.sock\n"
        "17:10:31 INFO    incident_ops.indexer: indexed 108 runbooks (200 chunks, "
        "180 embedded, 20 unchanged), 10 skipped, 0 failed in 9.0 s "
        "(index version 1)\n"
    )

    assert bench.embedding_rate(output) == pytest.approx(20.0)
    assert bench.embedding_rate("indexer said nothing useful") is None


TINY_RUNBOOKS = {
    "tls/CertificateExpiring.md": """\
# CertificateExpiring

## Meaning

A TLS certificate served by an ingress expires within days.

## Mitigation

Renew the certificate with the issuer and reload the ingress controller.
""",
    "queues/ConsumerLagGrowing.md": """\
# ConsumerLagGrowing

## Meaning

Message queue consumers fall behind: the backlog of unacknowledged
messages keeps growing.

## Mitigation

Scale out the consumer group and look for a poison message.
""",
    "dns/ResolverTimeouts.md": """\
# ResolverTimeouts

## Meaning

DNS lookups from pods time out; services cannot resolve each other.

## Mitigation

Restart the DNS resolver pods and check their upstream servers.
""",
}

TINY_RULES = """\
spec:
  groups:
  - name: tiny
    rules:
    - alert: CertificateExpiring
      annotations:
        summary: TLS certificate expires soon.
        description: The certificate on {{ $labels.ingress }} expires in
          {{ $value | humanizeDuration }}.
        runbook_url: https://example.org/runbooks/tls/certificateexpiring
    - alert: ConsumerLagGrowing
      annotations:
        summary: Queue consumers are falling behind.
        description: Backlog of {{ $value }} unacknowledged messages on
          {{ $labels.queue }}.
        runbook_url: https://example.org/runbooks/queues/consumerlaggrowing
    - alert: ResolverTimeouts
      annotations:
        summary: DNS lookups time out.
        description: Pods in {{ $labels.namespace }} cannot resolve service names.
        runbook_url: https://example.org/runbooks/dns/resolvertimeouts
    - alert: DiskSlow
      annotations:
        summary: Disk is slow.
        runbook_url: https://example.org/runbooks/node/diskslow
"""


def _bench_servers() -> set[int]:
    """Pids of ToonDB servers whose database lies in a benchmark folder."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"sochdb-server" in argv and b"/tmp/ops-bench-" in argv:
            pids.add(int(entry.name))
    return pids


def test_the_benchmark_runs_end_to_end_on_a_tiny_corpus(tmp_path: Path):
    runbooks, alerts = tmp_path / "runbooks", tmp_path / "alerts"
    for relative, text in TINY_RUNBOOKS.items():
        (runbooks / relative).parent.mkdir(parents=True, exist_ok=True)
        (runbooks / relative).write_text(text)
    alerts.mkdir()
    (alerts / "tiny-prometheusRule.yaml").write_text(TINY_RULES)
    out = tmp_path / "results.json"
    servers_before = _bench_servers()

    result = run_project(
        ["bench/retrieval_bench.py", "--runbooks", str(runbooks),
         "--alerts", str(alerts), "--warmup", "1", "--misses", "--out", str(out)],
        env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"}, timeout=180,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["corpus"]["indexing"]["documents"] == 3
    assert report["corpus"]["queries"] == {"answerable": 3, "runbook_not_indexed": 1}
    for mode in ("hybrid", "keyword"):
        assert report["corpus"]["modes"][mode]["recall@1"] == 1.0, report
    assert report["corpus"]["modes"]["vector"]["mrr"] > 0.5
    assert report["corpus"]["hybrid_misses"] == []
    assert "| hybrid | 1.00 |" in result.stdout
    assert _bench_servers() - servers_before == set()
