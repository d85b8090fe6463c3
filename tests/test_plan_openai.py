"""The OpenAI writer: the real ``openai`` client against a local fake server.

Each case ends in a valid plan whose ``plan_source`` says who wrote it; the
fallbacks say why. Timeouts and deadlines are set small so the suite stays
fast, and the slow cases assert the time they took.
"""

import json
import logging
import math
import socket
import time

import openai
import pytest
from fake_openai import FakeOpenAI, Reply, embedding_for
from plan_cases import all_chunks, context, facts

from incident_ops.config import ConfigError
from incident_ops.planning import Plan
from incident_ops.planning.evidence import assess
from incident_ops.planning.openai_writer import OpenAISettings, OpenAIWriter
from incident_ops.planning.prompt import SAFETY_MARGIN, build_prompt

RANKED = ("release-3", "slow-2", "pool-1", "heap-4", "disk-5")
API_KEY = "sk-test-9f8e7d6c5b4a-never-print-me"

GOOD_ANSWER = {
    "root_cause": "Release payments v7.3.0 five minutes before the breach.",
    "actions": [
        {"text": "Revert payments to the previous version.",
         "kind": "rollback_deployment", "chunk_ids": ["release-3"]},
        {"text": "Pause the release train.", "kind": "manual",
         "chunk_ids": ["release-3"]},
    ],
    "next_steps": ["Write up the bad release."],
}


@pytest.fixture
def fake():
    with FakeOpenAI(expected_key=API_KEY) as server:
        yield server


def make_writer(fake: FakeOpenAI, **overrides) -> OpenAIWriter:
    options = dict(api_key=API_KEY, model="fake-model", base_url=fake.base_url,
                   timeout_s=1.0, retries=2, deadline_s=6.0)
    options.update(overrides)
    return OpenAIWriter(OpenAISettings(**options))


def assert_valid(plan: Plan) -> dict:
    """The plan survives a round trip and cites only listed sources."""
    data = plan.to_dict()
    assert Plan.from_dict(json.loads(json.dumps(data))).to_dict() == data
    listed = {source["chunk_id"] for source in data["sources"]}
    for action in data["actions"]:
        assert action["chunk_ids"] and set(action["chunk_ids"]) <= listed
    assert API_KEY not in json.dumps(data)
    return data


def test_good_json_answer_becomes_the_plan(fake):
    fake.script(Reply.chat_json(GOOD_ANSWER))

    plan = assert_valid(make_writer(fake).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "openai"
    assert plan["model"] == "fake-model"
    assert plan["fallback_reason"] is None
    assert [a["kind"] for a in plan["actions"]] == ["rollback_deployment", "manual"]
    assert plan["sources"] == [{"chunk_id": "release-3", "source": "releases.md",
                                "heading": "Remediation"}]
    assert plan["next_steps"] == ["Write up the bad release."]

    [request] = fake.chat_requests()
    assert request.authorized
    assert "authorization" not in {name.lower() for name in request.headers}
    assert request.body["response_format"] == {"type": "json_object"}
    prompt = request.body["messages"][1]["content"]
    assert "2300 ms" in prompt and "payments v7.3.0" in prompt
    assert "[release-3]" in prompt and "[disk-5]" in prompt


def test_fenced_answer_with_trailing_comma_is_parsed(fake):
    body = json.dumps(GOOD_ANSWER, indent=2).replace(
        '"Write up the bad release."', '"Write up the bad release.",')
    fake.script(Reply.chat(f"Here is the plan:\n```json\n{body}\n```\nGood luck."))

    plan = assert_valid(make_writer(fake).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "openai"
    assert plan["actions"][0]["kind"] == "rollback_deployment"


def test_prose_answer_falls_back_to_the_offline_plan(fake):
    fake.script(Reply.chat("You should probably roll back the last release."))

    plan = assert_valid(make_writer(fake).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "offline"
    assert plan["model"] is None
    assert "not a JSON object" in plan["fallback_reason"]
    assert plan["actions"][0]["kind"] == "rollback_deployment"


def test_unknown_chunk_ids_and_kinds_are_rejected_not_kept(fake, caplog):
    fake.script(Reply.chat_json({
        "root_cause": "A bad release.",
        "actions": [
            {"text": "Revert the release.", "kind": "rollback_deployment",
             "chunk_ids": ["invented-77"]},
            {"text": "Open the circuit breaker.", "kind": "enable_circuit_breaker",
             "chunk_ids": ["slow-2", "invented-78"]},
            {"text": "Reboot the region.", "kind": "reboot_region",
             "chunk_ids": ["slow-2"]},
            {"text": "Ask the owning team.", "kind": "manual",
             "chunk_ids": ["release-3"]},
        ],
        "next_steps": [],
    }))

    with caplog.at_level(logging.WARNING):
        plan = assert_valid(make_writer(fake).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "openai"
    assert [(a["kind"], a["chunk_ids"]) for a in plan["actions"]] == [
        ("enable_circuit_breaker", ["slow-2"]), ("manual", ["release-3"])]
    rejected = " | ".join(plan["rejected"])
    assert "invented-77" in rejected and "invented-78" in rejected
    assert "'reboot_region' is not in the catalog" in rejected
    assert "invented-77" in caplog.text


def test_answer_with_no_grounded_action_falls_back(fake):
    fake.script(Reply.chat_json({
        "root_cause": "Unknown.",
        "actions": [{"text": "Pray.", "kind": "manual", "chunk_ids": ["nope"]}]}))

    plan = assert_valid(make_writer(fake).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "offline"
    assert "no grounded action" in plan["fallback_reason"]


def test_long_retry_after_falls_back_at_once(fake):
    fake.script(Reply.error(429, "rate limited", Retry_After="45"))

    started = time.monotonic()
    plan = assert_valid(make_writer(fake, deadline_s=10.0).write(
        facts(5), all_chunks()))
    elapsed = time.monotonic() - started

    assert plan["plan_source"] == "offline"
    assert "HTTP 429" in plan["fallback_reason"]
    assert "45 s" in plan["fallback_reason"]
    assert elapsed < 3, f"a 45 s Retry-After stalled the plan for {elapsed:.1f} s"
    assert len(fake.chat_requests()) == 1


def test_short_retry_after_is_honoured_then_the_model_answers(fake):
    fake.script(Reply.error(429, "slow down", Retry_After="0.3"),
                Reply.chat_json(GOOD_ANSWER))
    waits: list[float] = []

    def recording_sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    writer = OpenAIWriter(make_writer(fake).settings, sleep=recording_sleep)
    plan = assert_valid(writer.write(facts(5), all_chunks()))

    assert plan["plan_source"] == "openai"
    assert waits == [0.3]
    assert len(fake.chat_requests()) == 2


def test_timeouts_end_in_the_offline_plan_within_the_deadline(fake):
    slow = Reply.chat_json(GOOD_ANSWER, delay_s=3.0)
    fake.script(slow, slow, slow)

    started = time.monotonic()
    plan = assert_valid(make_writer(fake, timeout_s=1.0, retries=2,
                                    deadline_s=4.0).write(facts(5), all_chunks()))
    elapsed = time.monotonic() - started

    assert plan["plan_source"] == "offline"
    assert "did not answer within the timeout" in plan["fallback_reason"]
    assert elapsed < 5.5
    assert plan["actions"][0]["kind"] == "rollback_deployment"


def test_server_errors_are_retried_a_bounded_number_of_times(fake):
    fake.script(*[Reply.error(500, "internal failure")] * 3)

    plan = assert_valid(make_writer(fake, retries=2).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "offline"
    assert "HTTP 500" in plan["fallback_reason"]
    assert "3 attempts" in plan["fallback_reason"]
    assert len(fake.chat_requests()) == 3


def test_one_server_error_then_an_answer(fake):
    fake.script(Reply.error(503, "warming up"), Reply.chat_json(GOOD_ANSWER))

    plan = assert_valid(make_writer(fake).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "openai"
    assert len(fake.chat_requests()) == 2


def test_server_that_refuses_json_mode_is_asked_without_it(fake):
    fake.script(Reply.error(400, "response_format is not supported by this model"),
                Reply.chat_json(GOOD_ANSWER))

    plan = assert_valid(make_writer(fake).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "openai"
    first, second = fake.chat_requests()
    assert "response_format" in first.body
    assert "response_format" not in second.body


def test_server_that_refuses_max_tokens_gets_the_newer_name(fake):
    fake.script(Reply.error(400, "Unsupported parameter: 'max_tokens'; use "
                                 "'max_completion_tokens' instead."),
                Reply.chat_json(GOOD_ANSWER))

    plan = assert_valid(make_writer(fake).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "openai"
    second = fake.chat_requests()[1].body
    assert "max_tokens" not in second
    assert second["max_completion_tokens"] == 1200


def test_a_request_refused_for_good_falls_back(fake):
    fake.script(*[Reply.error(400, "model 'fake-model' does not exist")] * 2)

    plan = assert_valid(make_writer(fake).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "offline"
    assert "request refused: HTTP 400" in plan["fallback_reason"]
    assert len(fake.chat_requests()) == 1


def test_nothing_listening_falls_back_with_a_clear_reason():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = OpenAISettings(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1",
                              timeout_s=1.0, retries=1, deadline_s=4.0)

    plan = assert_valid(OpenAIWriter(settings).write(facts(5), all_chunks()))

    assert plan["plan_source"] == "offline"
    assert "could not connect" in plan["fallback_reason"]


def test_the_key_never_reaches_logs_errors_or_plans(fake, caplog):
    # A hostile or careless server that echoes the key in its error.
    fake.script(Reply.error(401, f"invalid api key {API_KEY}"),
                Reply.chat_json(GOOD_ANSWER))

    with caplog.at_level(logging.DEBUG):
        writer = make_writer(fake)
        refused = writer.write(facts(5), all_chunks())
        answered = writer.write(facts(5), all_chunks())

    assert refused.plan_source == "offline"
    assert "HTTP 401" in refused.fallback_reason
    assert answered.plan_source == "openai"
    assert all(request.authorized for request in fake.chat_requests())
    for text in (caplog.text, json.dumps(refused.to_dict()),
                 json.dumps(answered.to_dict()), repr(writer.settings)):
        assert API_KEY not in text


def test_low_ranked_chunks_are_dropped_to_fit_the_window(fake):
    fake.script(Reply.chat_json(GOOD_ANSWER))
    ranked = context(*RANKED)
    evidence = assess(facts(5))
    # A window with room for all but the last chunk, from the same counts.
    all_but_last = build_prompt(facts(5), evidence, context(*RANKED[:-1]),
                                100_000, 400).tokens
    window = math.ceil((all_but_last + 400 + 5) / (1 - SAFETY_MARGIN))

    plan = make_writer(fake, context_tokens=window, max_tokens=400).write(
        facts(5), ranked)

    assert plan.plan_source == "openai"
    [request] = fake.chat_requests()
    system, user = (m["content"] for m in request.body["messages"])
    assert "Every action cites at least one chunk id" in system
    assert "2300 ms" in user and "payments v7.3.0" in user
    assert "[release-3]" in user and "[heap-4]" in user
    assert "[disk-5]" not in user
    assert request.body["max_tokens"] == 400


def test_a_window_too_small_for_the_facts_falls_back(fake):
    plan = make_writer(fake, context_tokens=600, max_tokens=300).write(
        facts(5), all_chunks())

    assert plan.plan_source == "offline"
    assert "window" in plan.fallback_reason
    assert fake.chat_requests() == []


def test_settings_come_from_the_environment():
    assert OpenAISettings.from_env({}) is None
    settings = OpenAISettings.from_env({
        "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        "OPENAI_MODEL": "llama3.1", "OPENAI_TIMEOUT": "7",
        "OPENAI_CONTEXT_TOKENS": "8000", "OPENAI_MAX_TOKENS": "900"})
    assert (settings.model, settings.base_url, settings.timeout_s,
            settings.context_tokens, settings.max_tokens) == (
        "llama3.1", "http://127.0.0.1:1/v1", 7.0, 8000, 900)
    assert OpenAISettings.from_env({"OPENAI_API_KEY": "k"}).model == "gpt-4o-mini"
    assert API_KEY not in repr(settings)


@pytest.mark.parametrize("name, value", [
    ("OPENAI_TIMEOUT", "soon"), ("OPENAI_DEADLINE", "-1"),
    ("OPENAI_MAX_TOKENS", "20000"),
])
def test_bad_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        OpenAISettings.from_env({"OPENAI_API_KEY": "k", name: value})


def test_fake_server_serves_embeddings_in_both_encodings(fake):
    client = openai.OpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=0)

    packed = client.embeddings.create(model="m", input=["disk full", "slow"])
    plain = client.embeddings.create(model="m", input="slow",
                                     encoding_format="float")

    assert [round(v, 5) for v in packed.data[1].embedding] == [
        round(v, 5) for v in embedding_for("slow")]
    assert plain.data[0].embedding == pytest.approx(embedding_for("slow"))
    assert packed.data[0].embedding != packed.data[1].embedding
    assert all(request.authorized for request in fake.requests)
