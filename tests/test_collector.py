"""The collector as a real process against a real server."""

import signal
from datetime import UTC, datetime, timedelta

from incident_ops import action_requests, keys
from incident_ops.metric_log import (
    history_bucket,
    prune_history,
    read_latest,
)
from incident_ops.simulator import DEPLOY_AT, ServiceModel
from tests.ops_processes import Proc, stored_samples, wait_until

FAST = ["--interval", "0.2"]


def latest_seq(store) -> int:
    samples = read_latest(store)
    return samples[-1].seq if samples else 0


def test_samples_events_and_console_line(toondb, tmp_path):
    collector = Proc("collector", ["process_a_collector.py", *FAST], toondb.env(),
                     tmp_path)
    with toondb.store() as store:
        wait_until(lambda: latest_seq(store) >= DEPLOY_AT + 2, 60, "samples")
        samples = read_latest(store)
    assert collector.stop() == 0

    assert [s.seq for s in samples] == list(range(samples[0].seq, samples[-1].seq + 1))
    newest = samples[-1]
    assert newest.interval_s == 0.2 and newest.source == "simulate:bad-deploy"
    assert newest.latency_p99_ms > 1000 and newest.error_rate_pct > 5
    assert "db_connections_pct" in newest.signals

    lines = collector.output().splitlines()
    assert any(line.endswith("Event: deployment: deployed checkout-api v2.14.0")
               for line in lines)
    sample_lines = [line for line in lines if "Latency P99:" in line]
    assert len(sample_lines) >= DEPLOY_AT + 2
    assert sample_lines[0].startswith("[20") and " | Error Rate: " in sample_lines[0]
    assert sample_lines[0].endswith("%") and "| CPU: " in sample_lines[0]


def test_requested_actions_are_applied_and_recorded(toondb, tmp_path):
    collector = Proc("collector", ["process_a_collector.py", *FAST], toondb.env(),
                     tmp_path)
    with toondb.store() as store:
        wait_until(lambda: latest_seq(store) >= DEPLOY_AT + 4, 60, "the breach")
        now = datetime.now(UTC)
        action_requests.write_request(store, "INC-20260104-180000", 1,
                                      "rollback_deployment", "Roll back", now)
        action_requests.write_request(store, "INC-20260104-180000", 2,
                                      "reboot_the_moon", "Not a real action", now)

        first = wait_until(lambda: action_requests.read_outcome(
            store, "INC-20260104-180000.1"), 30, "the rollback outcome")
        second = wait_until(lambda: action_requests.read_outcome(
            store, "INC-20260104-180000.2"), 30, "the unknown action's outcome")
        recovered = wait_until(
            lambda: [s for s in read_latest(store)
                     if s.latency_p99_ms < 500 and s.error_rate_pct < 2], 60,
            "recovery after the rollback")
    assert collector.stop(signal.SIGTERM) == 0

    assert first["outcome"] == "applied" and "bad_deploy" in first["detail"]
    assert second["outcome"] == "unknown_kind"
    assert second["detail"] == "'reboot_the_moon' is not in the action catalog"
    assert recovered
    assert "Applied rollback_deployment for INC-20260104-180000" in collector.output()
    assert "Did not apply reboot_the_moon" in collector.output()


def test_replay_records_invalid_values_as_missing(toondb, tmp_path):
    series = tmp_path / "series.csv"
    series.write_text(
        "timestamp,latency_p99_ms,error_rate_pct,cpu_pct\r\n"
        "2026-01-04T18:00:00Z,300,1.5,40\r\n"
        "1767549605,nan,,41\r\n"
        "2026-01-04T18:00:10Z,-5,150,abc\r\n"
    )
    collector = Proc("collector", ["process_a_collector.py", "--interval", "0.1",
                                   "--source", f"replay:{series}"],
                     toondb.env(), tmp_path)
    assert collector.process.wait(timeout=60) == 0

    with toondb.store() as store:
        samples = read_latest(store)
    assert [(s.latency_p99_ms, s.error_rate_pct, s.cpu_pct) for s in samples] == [
        (300.0, 1.5, 40.0), (None, None, 41.0), (None, None, None)]
    assert samples[1].source_at == "2026-01-04T18:00:05.000+00:00"
    assert samples[2].invalid and samples[0].invalid == ()
    warnings = [line for line in collector.errors().splitlines() if "WARNING" in line]
    assert len(warnings) == 2, collector.errors()
    assert "Latency P99: n/a | Error Rate: n/a | CPU: 41.0%" in collector.output()


def test_zero_traffic_has_no_error_rate(toondb, tmp_path):
    collector = Proc("collector", ["process_a_collector.py", "--interval", "0.1",
                                   "--scenario", "idle"], toondb.env(), tmp_path)
    with toondb.store() as store:
        wait_until(lambda: latest_seq(store) >= 3, 60, "samples")
        samples = read_latest(store)
    assert collector.stop() == 0
    assert all(s.error_rate_pct is None and s.latency_p99_ms is None for s in samples)
    assert "Latency P99: n/a | Error Rate: n/a" in collector.output()


def test_resume_continues_the_simulated_service(toondb, tmp_path):
    first = Proc("first", ["process_a_collector.py", *FAST], toondb.env(), tmp_path)
    with toondb.store() as store:
        wait_until(lambda: latest_seq(store) >= 5, 60, "samples")
    assert first.stop() == 0

    with toondb.store() as store:
        saved = ServiceModel.from_dict(store.get(keys.SIMULATOR_STATE))
        last = latest_seq(store)
    second = Proc("second", ["process_a_collector.py", *FAST, "--resume"],
                  toondb.env(), tmp_path)
    with toondb.store() as store:
        wait_until(lambda: latest_seq(store) >= last + 2, 60, "more samples")
        resumed = ServiceModel.from_dict(store.get(keys.SIMULATOR_STATE))
    assert second.stop() == 0
    assert resumed.step_count > saved.step_count >= 5
    assert f"resuming the simulated service (bad-deploy) at sample " \
           f"{saved.step_count}" in second.errors()
    assert f"continuing after sample {last}" in second.errors()


def test_server_restart_loses_no_sample(toondb, tmp_path):
    started = datetime.now(UTC)
    collector = Proc("collector", ["process_a_collector.py", *FAST], toondb.env(),
                     tmp_path)
    with toondb.store() as store:
        wait_until(lambda: latest_seq(store) >= 5, 60, "samples")
    toondb.kill()
    collector.wait_for("ToonDB server unreachable", timeout=30)
    toondb.start()
    collector.wait_for("ToonDB server reachable again", timeout=60)
    with toondb.store() as store:
        before = latest_seq(store)
        wait_until(lambda: latest_seq(store) >= before + 5, 60, "samples after")
    assert collector.stop() == 0

    printed = [line for line in collector.output().splitlines()
               if "Latency P99" in line]
    with toondb.store() as store:
        stored = stored_samples(store, started)
    seqs = [s.seq for s in stored]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    # Every sample the collector printed (it prints only once stored) is there.
    assert len(printed) <= len(stored)
    assert collector.errors().count("ToonDB server unreachable") == 1


def test_history_retention_deletes_whole_expired_buckets(toondb):
    now = datetime(2026, 1, 4, 18, 0, 30, tzinfo=UTC)
    keep = timedelta(minutes=10)
    with toondb.store() as store:
        # A fresh database: the first call only sets the watermark.
        assert prune_history(store, now - timedelta(minutes=5), keep) == 0
        for minutes_ago in (16, 14, 12, 11, 10, 9, 1):
            moment = now - timedelta(minutes=minutes_ago)
            store.put(f"{keys.METRICS_HISTORY}{history_bucket(moment)}/1", {"x": 1})

        deleted = prune_history(store, now, keep)
        left = sorted(store.scan("metrics/hist/"))

    # The watermark was set at 17:45:30: minute 16 lies before it and is
    # not looked at again. Minutes 14, 12 and 11 ended before 17:50:30; the
    # bucket holding minute 10 (17:50) ends after it and stays.
    assert deleted == 3
    assert left == [f"metrics/hist/{history_bucket(now - timedelta(minutes=m))}/1"
                    for m in (16, 10, 9, 1)]


def test_second_collector_stands_by_and_takes_over_when_the_first_dies(
        toondb, tmp_path):
    """Two collectors on one database would both write ``metrics/latest``, and a
    healthy one could hide the other's outage: only the lock holder collects."""
    healthy = Proc("healthy", ["process_a_collector.py", *FAST,
                               "--scenario", "healthy"], toondb.env(), tmp_path)
    with toondb.store() as store:
        wait_until(lambda: latest_seq(store) >= 2, 60, "the first collector")
        bad = Proc("bad", ["process_a_collector.py", *FAST], toondb.env(), tmp_path)
        bad.wait_for(f"standby: another collector is active (pid {healthy.pid})")
        before = latest_seq(store)
        wait_until(lambda: latest_seq(store) >= before + 5, 30, "more samples")
        assert {s.source for s in read_latest(store)} == {"simulate:healthy"}
        assert "Latency P99:" not in bad.output()

        healthy.kill()
        bad.wait_for("the active collector is gone: taking over", timeout=30)
        wait_until(lambda: read_latest(store)[-1].source == "simulate:bad-deploy",
                   30, "the standby's samples")
    assert bad.stop() == 0
