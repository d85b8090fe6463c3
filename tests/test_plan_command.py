"""``python -m incident_ops plan`` as a user runs it: a real process, a real server."""

import json
import os

import pytest
from fake_openai import FakeOpenAI
from indexed_server import indexed_runbooks_server

from tests.conftest import PROJECT_ROOT, run_project

API_KEY = "sk-test-command-5a4b3c2d1e"
BAD_DEPLOY = ["-m", "incident_ops", "plan", "--latency", "1802", "--error-rate",
              "9.5", "--cpu", "54", "--event", "deployed checkout-api v2.14.0"]
PLAN_KEYS = {"root_cause", "actions", "next_steps", "sources", "plan_source",
             "model", "fallback_reason", "rejected"}


@pytest.fixture(scope="module")
def indexed():
    with indexed_runbooks_server() as running:
        yield running


def test_bad_deploy_plan_is_printed_with_a_leading_rollback(indexed):
    result = run_project(BAD_DEPLOY, env=indexed.env())

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "MITIGATION PLAN" in out
    first_action = out[out.index("Immediate actions:"):].splitlines()[1:4]
    assert "1. Roll back the deployment" in first_action[0]
    assert "[rollback_deployment]" in " ".join(first_action)
    sources = out[out.index("Sources:"):]
    assert "deployment-rollback.md" in sources
    assert "Written by: offline writer" in out
    assert "disk-full.md" not in out


def test_json_output_is_the_plan_structure(indexed):
    result = run_project([*BAD_DEPLOY, "--json"], env=indexed.env())

    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert set(plan) == PLAN_KEYS
    assert plan["plan_source"] == "offline" and plan["model"] is None
    assert plan["actions"][0]["kind"] == "rollback_deployment"
    by_id = {s["chunk_id"]: s for s in plan["sources"]}
    assert {by_id[c]["source"] for c in plan["actions"][0]["chunk_ids"]} >= {
        "deployment-rollback.md"}
    assert set(by_id[plan["actions"][0]["chunk_ids"][0]]) == {
        "chunk_id", "source", "heading"}


def test_signals_steer_the_plan_to_the_database(indexed):
    result = run_project(
        ["-m", "incident_ops", "plan", "--latency", "2198", "--error-rate", "8.1",
         "--signal", "db_connections_pct=89", "--json"], env=indexed.env())

    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["actions"][0]["kind"] == "scale_database"
    assert plan["root_cause"].startswith("Database overload")


def test_with_a_key_the_plan_comes_from_the_configured_server(indexed):
    with FakeOpenAI(expected_key=API_KEY) as fake:
        env = indexed.env(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=fake.base_url,
                          OPENAI_MODEL="local-model", OPENAI_TIMEOUT="10")
        result = run_project([*BAD_DEPLOY, "--json"], env=env)
        requests = fake.chat_requests()

    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["plan_source"] == "openai"
    assert plan["model"] == "local-model"
    assert plan["fallback_reason"] is None
    assert len(requests) == 1 and requests[0].authorized
    assert requests[0].body["model"] == "local-model"
    assert API_KEY not in result.stdout + result.stderr


def test_server_down_is_one_clear_line(db_dir):
    env = {**_env_without_server(db_dir), "OPS_STORE_DEADLINE": "1"}
    result = run_project(BAD_DEPLOY, env=env, timeout=60)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ToonDB server not reachable")
    assert "start_server.sh" in lines[0]


def test_nothing_indexed_is_one_clear_line(toondb):
    result = run_project(BAD_DEPLOY, env=toondb.env())

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: no runbooks have been indexed yet: run "
        "`python process_b_indexer.py --once` against this database first"]


@pytest.mark.parametrize("args, message", [
    (["--error-rate", "140"], "--error-rate 140 is out of range"),
    (["--latency", "-5"], "--latency -5 is out of range"),
    (["--signal", "queue_depth=9"], "use NAME=VALUE with NAME one of"),
    (["--signal", "memory_pct=lots"], "'lots' is not a number"),
])
def test_bad_arguments_are_one_clear_line(args, message, db_dir):
    base = {"--latency": "1500", "--error-rate": "8"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["-m", "incident_ops", "plan"]
    for flag, value in base.items():
        argv += [flag, value]

    result = run_project(argv, env=_env_without_server(db_dir), timeout=60)

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert message in line


def _env_without_server(db_dir) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OPS_DB=str(db_dir), PYTHONPATH=str(PROJECT_ROOT))
    env.pop("OPENAI_API_KEY", None)
    return env


@pytest.mark.parametrize("flag, value, message", [
    ("--latency", "inf", "'inf' is not a finite number"),
    ("--latency", "nan", "'nan' is not a finite number"),
    ("--error-rate", "nan", "'nan' is not a finite number"),
    ("--cpu", "nan", "'nan' is not a finite number"),
    ("--event-age", "inf", "'inf' is not a finite number"),
])
def test_non_finite_numbers_are_refused_by_the_parser(flag, value, message, capsys):
    from incident_ops.cli import build_parser

    argv = ["plan", "--latency", "1500", "--error-rate", "8", flag, value]
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)

    assert exited.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err


def test_a_non_finite_signal_is_one_clear_line(db_dir):
    argv = ["-m", "incident_ops", "plan", "--latency", "1500", "--error-rate", "8",
            "--signal", "memory_pct=inf"]

    result = run_project(argv, env=_env_without_server(db_dir), timeout=60)

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "--signal 'memory_pct=inf': 'inf' is not a finite number" in line
