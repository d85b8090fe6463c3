"""The store client against a real ToonDB server."""

import subprocess
import time

import pytest

from incident_ops.store import (
    MAX_VALUE_BYTES,
    NamespaceError,
    Store,
    StoreError,
    StoreUnavailable,
    ValueTooLarge,
    validate_namespace,
)
from tests.conftest import PROJECT_ROOT, python_command

WRITER = str(PROJECT_ROOT / "tests" / "store_writer.py")


def start_writer(toondb, prefix: str, count: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        python_command(WRITER, str(toondb.socket), prefix, str(count), *extra),
        cwd=PROJECT_ROOT, env=toondb.env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def acked_keys(output: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in output.splitlines()
            if line.startswith("ack ")]


@pytest.mark.timeout(600)
def test_three_processes_write_5000_distinct_keys_each(toondb):
    writers = [start_writer(toondb, f"conc/w{n}", 5000) for n in range(3)]
    outputs = [writer.communicate(timeout=560) for writer in writers]

    for writer, (_, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
    with toondb.store() as store:
        for n in range(3):
            stored = store.scan(f"conc/w{n}/")
            assert len(stored) == 5000
            assert stored[f"conc/w{n}/004999"] == {"writer": f"conc/w{n}", "i": 4999}


def test_acknowledged_writes_survive_server_kill_and_restart(toondb):
    writer = start_writer(toondb, "crash", 3000)

    # Let some writes land, then crash the server mid-stream.
    seen = 0
    while seen < 300:
        if writer.stdout.readline().startswith("ack "):
            seen += 1
    toondb.kill()
    time.sleep(1.0)
    toondb.start()

    out, err = writer.communicate(timeout=180)
    assert writer.returncode == 0, f"writer raised: {err}"
    acked = acked_keys(out)
    assert len(acked) + seen == 3000
    with toondb.store() as store:
        stored = store.scan("crash/")
    assert len(stored) == 3000
    assert all(key in stored for key in acked)


def test_same_key_writers_ride_out_write_conflicts(toondb):
    writers = [start_writer(toondb, "hot", 300, "--same-key") for _ in range(3)]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    with toondb.store() as store:
        assert store.get("hot/shared")["i"] == 299


@pytest.mark.timeout(120)
def test_connection_idle_longer_than_server_timeout_keeps_working(toondb):
    with toondb.store() as store:
        store.put("idle/a", 1)
        time.sleep(32)  # the server closes connections idle for 30 s
        store.put("idle/b", 2)
        assert store.get("idle/a") == 1
        assert store.get("idle/b") == 2


def test_server_down_fails_after_deadline_naming_the_socket(toondb):
    toondb.stop()
    store = Store(toondb.socket, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=str(toondb.socket)):
        store.get("any/key")
    assert 1.0 <= time.monotonic() - started < 5.0


def test_calls_wait_for_a_server_that_comes_back(toondb):
    with toondb.store(deadline=20) as store:
        store.put("wait/a", 1)
        toondb.stop()
        restarter = subprocess.Popen(
            python_command("-c", "import time; time.sleep(2)"), cwd=PROJECT_ROOT
        )
        restarter.wait()
        toondb.start()
        assert store.get("wait/a") == 1


def test_value_over_cap_is_refused_before_reaching_the_server(tmp_path):
    # No server listens here: reaching it would raise StoreUnavailable.
    store = Store(tmp_path / "nothing.sock", deadline=0.2)
    with pytest.raises(ValueTooLarge, match="over the client's cap"):
        store.put("big/one", "x" * (MAX_VALUE_BYTES + 1))


def test_scan_over_engine_frame_cap_errors_and_connection_recovers(toondb):
    with toondb.store() as store:
        for n in range(3):
            store.put(f"huge/{n}", "y" * (6 * 1024 * 1024))
        with pytest.raises(StoreError, match="16 MiB"):
            store.scan("huge/")
        store.put("after/ok", True)
        assert store.get("after/ok") is True
        assert len(store.get("huge/0")) == 6 * 1024 * 1024


def test_values_round_trip_as_json_and_missing_keys_give_default(toondb):
    with toondb.store() as store:
        store.put("json/empty", "")
        store.put("json/nested", {"a": [1, 2.5, None], "b": "é"})
        assert store.get("json/empty") == ""
        assert store.get("json/nested") == {"a": [1, 2.5, None], "b": "é"}
        assert store.get("json/missing", "default") == "default"
        store.delete("json/nested")
        assert store.get("json/nested") is None
        with pytest.raises(StoreError, match="whole namespace"):
            store.scan("")


def test_nan_is_refused_not_stored(toondb):
    with toondb.store() as store, pytest.raises(ValueError):
        store.put("json/nan", float("nan"))


@pytest.mark.parametrize("name", ["has/slash", "", "sp ace"])
def test_namespace_with_separator_or_odd_characters_is_refused(name):
    with pytest.raises(NamespaceError):
        validate_namespace(name)


def test_namespace_that_prefixes_another_is_refused():
    validate_namespace("fleet_ops")
    with pytest.raises(NamespaceError, match="prefix"):
        validate_namespace("fleet")
    with pytest.raises(NamespaceError, match="prefix"):
        validate_namespace("fleet_ops_v2")
    assert validate_namespace("fleet_ops") == "fleet_ops"


def test_namespaces_keep_their_keys_apart(toondb):
    validate_namespace("other_ns")
    with toondb.store() as ours, Store(toondb.socket, namespace="other_ns") as theirs:
        ours.put("shared/key", "ours")
        theirs.put("shared/key", "theirs")
        assert ours.get("shared/key") == "ours"
        assert theirs.scan("shared/") == {"shared/key": "theirs"}
