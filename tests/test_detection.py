"""The detection rule on recorded series: the answers issue 4 requires.

Most cases run the real ``detect --replay`` command on a CSV file, so the
parser, the rule and the output are checked together.
"""

import json

import pytest

from incident_ops.detection import (
    Change,
    Detector,
    Rules,
    Verdict,
    classify,
    evaluate_series,
)
from tests.conftest import PROJECT_ROOT, run_project

HEADER = "timestamp,latency_p99_ms,error_rate_pct,cpu_pct"
BREACH = (1500, 8)
HEALTHY = (300, 1)


def write_series(folder, rows, name="series.csv"):
    """A CSV with one row per ``(p99, errors)``, 5 s apart; None is empty."""
    lines = [HEADER]
    for index, (latency, errors) in enumerate(rows):
        cells = ["" if value is None else str(value) for value in (latency, errors)]
        lines.append(f"2026-01-04T18:{index // 12:02d}:{index % 12 * 5:02d},"
                     f"{cells[0]},{cells[1]},40")
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def detect(path, *flags):
    result = run_project(["-m", "incident_ops", "detect", "--replay", str(path),
                          "--json", *flags], env=None, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_single_bad_sample_opens_nothing(tmp_path):
    path = write_series(tmp_path, [(200, 1), (200, 1), (1500, 8), (200, 1), (200, 1)])
    assert detect(path) == []


def test_hovering_at_the_threshold_keeps_one_incident(tmp_path):
    hovering = [(990 if i % 2 == 0 else 1010, 6) for i in range(20)]
    rows = [BREACH] * 5 + hovering + [HEALTHY] * 5
    episodes = detect(write_series(tmp_path, rows))

    assert len(episodes) == 1
    assert episodes[0]["opened_index"] == 2
    # Healthy rows are 25..29; the third of them clears.
    assert episodes[0]["resolved_index"] == 27
    assert episodes[0]["resolved_at"] == "2026-01-04T18:02:15.000+00:00"


def test_zero_traffic_breaks_the_streak_and_is_not_healthy(tmp_path):
    zero = (250, None)
    rows = [BREACH, BREACH, zero, BREACH, BREACH, zero, BREACH, BREACH]
    assert detect(write_series(tmp_path, rows)) == []

    # Inside an incident, zero-traffic rows do not count towards clearing.
    rows = [BREACH] * 3 + [HEALTHY, HEALTHY, zero] * 2 + [HEALTHY] * 3
    episodes = detect(write_series(tmp_path, rows, "inside.csv"))
    assert [(e["opened_index"], e["resolved_index"]) for e in episodes] == [(2, 11)]


def test_moving_p99_inside_an_incident_is_the_same_incident(tmp_path):
    rows = [(1200, 8), (1400, 8), (1300, 8), (1200, 9), (1400, 7), (1300, 8)]
    episodes = detect(write_series(tmp_path, rows))
    assert len(episodes) == 1
    assert episodes[0]["resolved_index"] is None
    assert episodes[0]["resolved_at"] is None


def test_breach_after_resolved_is_a_new_incident(tmp_path):
    rows = [BREACH] * 3 + [HEALTHY] * 3 + [BREACH] * 3
    episodes = detect(write_series(tmp_path, rows))
    assert [(e["opened_index"], e["resolved_index"]) for e in episodes] == [
        (2, 5), (8, None)]


def test_columns_by_name_crlf_and_epoch_timestamps():
    episodes = detect(PROJECT_ROOT / "tests/data/reordered_crlf.csv")
    assert episodes == [{
        "opened_index": 3, "opened_at": "2026-01-04T18:00:15.000+00:00",
        "resolved_index": 6, "resolved_at": "2026-01-04T18:00:30.000+00:00",
        "first_breach_index": 1,
    }]


def test_invalid_values_are_missing_and_logged(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "\n" + "\n".join([
        "2026-01-04T18:00:00,1500,8,40",
        "2026-01-04T18:00:05,1500,nan,40",      # NaN breaks the streak
        "2026-01-04T18:00:10,1500,8,40",
        "2026-01-04T18:00:15,-3,8,40",          # negative latency
        "2026-01-04T18:00:20,1500,8,40",
        "2026-01-04T18:00:25,1500,101,40",      # over 100 %
        "2026-01-04T18:00:30,1500,8,40",
        "2026-01-04T18:00:35,slow,8,40",        # not a number
    ]) + "\n")
    result = run_project(["-m", "incident_ops", "detect", "--replay", str(path)],
                         env=None, timeout=60)

    assert result.returncode == 0
    assert "0 incident(s) in 8 samples (4 without p99 or error rate)" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 4
    assert "error_rate_pct='101' is over 100" in result.stderr


def test_bad_timestamps_short_rows_and_time_going_back_are_warned(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text(HEADER + "\n" + "\n".join([
        "2026-01-04T18:00:10,1500,8,40",
        "2026-01-04T18:00:05,1500,8,40",        # earlier than the row before
        "yesterday,1500,8,40",                  # cannot be parsed
        "2026-01-04T18:00:15,300",              # too few cells
        "2026-01-04T18:00:15,300,1,40",         # same time as the row before
    ]) + "\n")
    result = run_project(["-m", "incident_ops", "detect", "--replay", str(path)],
                         env=None, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "incident 1: opened at sample 2 (no timestamp), still open at the end "
        "of the series")
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 3, warnings
    assert ("row 2: timestamp='yesterday' is neither ISO 8601 nor epoch seconds; "
            "kept without a timestamp") in warnings[0]
    assert "row 3: 2 cell(s) where the header has 4; absent ones are missing" in (
        warnings[1])
    assert ("timestamps do not increase at 2 row(s), first at row 1 "
            "(2026-01-04T18:00:05.000+00:00, after 2026-01-04T18:00:10.000+00:00)"
            ) in warnings[2]


def test_text_output_names_open_and_resolve_samples(tmp_path):
    path = write_series(tmp_path, [BREACH] * 3 + [HEALTHY] * 3)
    result = run_project(["-m", "incident_ops", "detect", "--replay", str(path)],
                         env=None, timeout=60)
    assert result.stdout.splitlines()[0] == (
        "incident 1: opened at sample 2 (2026-01-04T18:00:10.000+00:00), "
        "resolved at sample 5 (2026-01-04T18:00:25.000+00:00)")


@pytest.mark.parametrize("content, reason", [
    (None, "no such file"),
    (b"", "empty file"),
    (b"time,p99\n1,2\n", "header lacks column(s) timestamp, latency_p99_ms"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
])
def test_unreadable_file_exits_2_with_one_line(tmp_path, content, reason):
    path = tmp_path / "series.csv"
    if content is not None:
        path.write_bytes(content)
    result = run_project(["-m", "incident_ops", "detect", "--replay", str(path)],
                         env=None, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert reason in result.stderr


def test_thresholds_are_strict_and_configurable():
    rules = Rules()
    assert classify(1000, 8, rules) is Verdict.BETWEEN
    assert classify(1500, 5, rules) is Verdict.BETWEEN
    assert classify(1000.1, 5.1, rules) is Verdict.BREACH
    assert classify(300, 1, rules, stale=True) is Verdict.NO_DATA

    looser = Rules(trigger_p99_ms=2000, trigger_samples=1)
    assert evaluate_series([(None, 1500, 8)], looser) == []
    assert len(evaluate_series([(None, 2500, 8)], looser)) == 1


def test_clear_band_not_below_trigger_is_refused(tmp_path):
    with pytest.raises(ValueError, match="clear p99 1200 ms is not below the trigger"):
        Rules(clear_p99_ms=1200)
    with pytest.raises(ValueError, match="clear error rate 5 % is not below"):
        Rules(clear_error_pct=5)

    path = write_series(tmp_path, [HEALTHY])
    result = run_project(["-m", "incident_ops", "detect", "--replay", str(path),
                          "--clear-p99", "1000"], env=None, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == ("error: clear p99 1000 ms is not below the "
                                     "trigger 1000 ms; the clear band must be lower")


@pytest.mark.parametrize("command, flag, value, complaint", [
    (["process_a_collector.py"], "--interval", "nan", "is not a finite number"),
    (["process_a_collector.py"], "--interval", "inf", "is not a finite number"),
    (["process_a_collector.py"], "--retention-hours", "nan", "is not a finite number"),
    (["process_a_collector.py"], "--retention-hours", "-1", "must be greater than 0"),
    (["process_c_commander.py"], "--poll", "nan", "is not a finite number"),
    (["process_c_commander.py"], "--trigger-p99", "nan", "is not a finite number"),
    (["process_c_commander.py"], "--action-window", "0", "must be at least 1"),
    (["process_c_commander.py"], "--trigger-error", "-3", "must not be negative"),
    (["-m", "incident_ops", "detect", "--replay", "x.csv"], "--trigger-p99", "nan",
     "is not a finite number"),
    (["-m", "incident_ops", "detect", "--replay", "x.csv"], "--clear-samples",
     "1.5", "is not a whole number"),
])
def test_bad_numeric_flags_exit_2_with_one_usage_error(command, flag, value,
                                                       complaint):
    result = run_project([*command, f"{flag}={value}"], env=None, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: ")
    last = result.stderr.strip().splitlines()[-1]
    assert last.endswith(f"error: argument {flag}: '{value}' {complaint}")


def test_detector_reports_where_the_breach_began():
    detector = Detector(Rules(), active=False)
    change = None
    for position in (40, 41, 42):
        detector, change = detector.observe(Verdict.BREACH, position)
    assert change is Change.OPEN
    assert detector.active and detector.breach_start == 40
