"""Plans from an OpenAI-compatible chat model, with the offline plan as fallback.

Configured from the environment (see ``OpenAISettings.from_env``); any
server speaking the chat completions API works through ``OPENAI_BASE_URL``
(Ollama, vLLM, a local proxy). Time is bounded: each call has a timeout,
retries are few, and every wait, a server's ``Retry-After`` included, must
fit in one overall deadline, otherwise the offline plan is written at
once, with the reason in ``fallback_reason``. The API key goes to the
client and nowhere else: never into a log line, an error or a plan.
"""

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import openai

from incident_ops.config import ConfigError
from incident_ops.planning.answer import AnswerError, parse_answer, validate_answer
from incident_ops.planning.evidence import assess
from incident_ops.planning.offline import OfflineWriter
from incident_ops.planning.plan import IncidentFacts, Plan
from incident_ops.planning.prompt import PromptTooLarge, build_prompt
from incident_ops.retrieval.context import Context

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"
# Statuses worth another attempt: the server is busy or briefly broken.
RETRYABLE_STATUSES = {408, 409, 429, 500, 502, 503, 504}
# Never start a call with less time than this left before the deadline.
MIN_CALL_S = 1.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 4.0

# Options some OpenAI-compatible servers reject with a 400 that names them;
# the request is then repeated without the option (``max_tokens``: under
# its newer name, ``max_completion_tokens``).
REFUSABLE_PARAMS = ("response_format", "temperature", "max_tokens")


class ModelCallFailed(Exception):
    """The model gave no answer in time; the message says why."""


@dataclass(frozen=True)
class OpenAISettings:
    """How to reach the model. ``api_key`` is kept out of ``repr``."""

    api_key: str = field(repr=False)
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    timeout_s: float = 20.0         # per call
    retries: int = 2                # calls after the first
    deadline_s: float = 45.0        # all calls and waits together
    context_tokens: int = 16000     # the model's context window
    max_tokens: int = 1200          # reserved for the answer

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ
                 ) -> "OpenAISettings | None":
        """Settings from ``OPENAI_*`` variables; ``None`` without a key."""
        api_key = environ.get("OPENAI_API_KEY", "").strip()
        if not api_key:
            return None
        settings = cls(
            api_key=api_key,
            model=environ.get("OPENAI_MODEL", "").strip() or DEFAULT_MODEL,
            base_url=environ.get("OPENAI_BASE_URL", "").strip() or None,
            timeout_s=_number(environ, "OPENAI_TIMEOUT", cls.timeout_s),
            retries=int(_number(environ, "OPENAI_RETRIES", cls.retries,
                                allow_zero=True)),
            deadline_s=_number(environ, "OPENAI_DEADLINE", cls.deadline_s),
            context_tokens=int(_number(environ, "OPENAI_CONTEXT_TOKENS",
                                       cls.context_tokens)),
            max_tokens=int(_number(environ, "OPENAI_MAX_TOKENS", cls.max_tokens)),
        )
        if settings.max_tokens >= settings.context_tokens:
            raise ConfigError(
                f"OPENAI_MAX_TOKENS={settings.max_tokens} leaves no room for the "
                f"prompt in OPENAI_CONTEXT_TOKENS={settings.context_tokens}")
        return settings


def _number(environ: Mapping[str, str], name: str, default: float,
            allow_zero: bool = False) -> float:
    raw = environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}={value:g} must be a positive number")
    return value


class OpenAIWriter:
    """Writes plans with a chat model; falls back to the offline writer."""

    name = "openai"

    def __init__(self, settings: OpenAISettings,
                 fallback: OfflineWriter | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.fallback = fallback or OfflineWriter()
        self._sleep = sleep
        self._clock = clock
        # The client's own retries would honour Retry-After up to 120 s;
        # ours fit every wait into the deadline instead.
        self._client = openai.OpenAI(
            api_key=settings.api_key, base_url=settings.base_url,
            max_retries=0, timeout=settings.timeout_s)
        self._refused_params: set[str] = set()

    def write(self, facts: IncidentFacts, context: Context) -> Plan:
        """The model's plan, or the offline plan saying why not."""
        evidence = assess(facts)
        try:
            prompt = build_prompt(facts, evidence, context,
                                  self.settings.context_tokens,
                                  self.settings.max_tokens)
            if prompt.dropped:
                log.info("left %d low-ranked chunks out to fit the %d-token "
                         "window", prompt.dropped, self.settings.context_tokens)
            text = self._complete(prompt.messages)
            answer = validate_answer(parse_answer(text), prompt.chunks)
        except (ModelCallFailed, AnswerError, PromptTooLarge) as error:
            reason = self._scrub(str(error))
            log.warning("no plan from %s (%s); using the offline plan",
                        self.settings.model, reason)
            return self.fallback.write(facts, context, fallback_reason=reason)

        log.info("plan from %s: %d actions, %d parts rejected",
                 self.settings.model, len(answer.actions), len(answer.rejected))
        return Plan(
            root_cause=answer.root_cause,
            actions=answer.actions,
            next_steps=answer.next_steps,
            sources=answer.sources,
            plan_source="openai",
            model=self.settings.model,
            rejected=[self._scrub(item) for item in answer.rejected],
        )

    def _complete(self, messages: list[dict[str, str]]) -> str:
        """The answer's text, within the deadline, or ``ModelCallFailed``."""
        deadline = self._clock() + self.settings.deadline_s
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            try:
                response = self._client.chat.completions.create(
                    **self._request(messages),
                    timeout=max(MIN_CALL_S, min(self.settings.timeout_s, remaining)))
            except openai.BadRequestError as error:
                if self._drop_refused_param(error):
                    continue
                raise ModelCallFailed(f"request refused: {_describe(error)}") from None
            except (openai.APIConnectionError, openai.APIStatusError) as error:
                if not _retryable(error):
                    raise ModelCallFailed(_describe(error)) from None
                wait = _retry_after(error) or min(
                    BACKOFF_START_S * 2 ** (attempt - 1), BACKOFF_MAX_S)
                self._wait_or_give_up(error, attempt, wait, deadline)
                continue
            return _answer_text(response)

    def _request(self, messages: list[dict[str, str]]) -> dict:
        request = {
            "model": self.settings.model,
            "messages": messages,
            "max_tokens": self.settings.max_tokens,
            "temperature": 0,
            "response_format": {"type": "json_object"},
        }
        if "max_tokens" in self._refused_params:
            # OpenAI's reasoning models take the newer name for the same cap.
            request["max_completion_tokens"] = request.pop("max_tokens")
        for name in self._refused_params:
            request.pop(name, None)
        return request

    def _drop_refused_param(self, error: openai.BadRequestError) -> bool:
        """Forget an optional request field the server named in its 400."""
        message = str(error).lower()
        for name in REFUSABLE_PARAMS:
            if name in message and name not in self._refused_params:
                log.info("%s refuses %s; asking without it", self.settings.model, name)
                self._refused_params.add(name)
                return True
        return False

    def _wait_or_give_up(self, error: Exception, attempt: int, wait: float,
                         deadline: float) -> None:
        reason = _describe(error)
        if attempt > self.settings.retries:
            raise ModelCallFailed(f"{reason}, {attempt} attempts made")
        if self._clock() + wait + MIN_CALL_S > deadline:
            raise ModelCallFailed(
                f"{reason}; waiting {wait:g} s more would pass the "
                f"{self.settings.deadline_s:g} s limit (OPENAI_DEADLINE)")
        log.info("%s; retrying in %.1f s", reason, wait)
        self._sleep(wait)

    def _scrub(self, text: str) -> str:
        return text.replace(self.settings.api_key, "[key withheld]")


def _retryable(error: Exception) -> bool:
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRYABLE_STATUSES
    return True   # timeouts and refused connections


def _retry_after(error: Exception) -> float | None:
    """Seconds the server asked us to wait, from ``Retry-After`` headers."""
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _describe(error: Exception) -> str:
    if isinstance(error, openai.APITimeoutError):
        return "the model did not answer within the timeout (OPENAI_TIMEOUT)"
    if isinstance(error, openai.APIConnectionError):
        return "could not connect to the model's server (check OPENAI_BASE_URL)"
    if isinstance(error, openai.APIStatusError):
        detail = error.message.splitlines()[0][:160] if error.message else ""
        return f"HTTP {error.status_code} from the model's server: {detail}"
    return str(error)


def _answer_text(response: object) -> str:
    try:
        text = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        raise AnswerError("the server's reply has no message") from None
    if not text or not text.strip():
        raise AnswerError("the model's answer is empty")
    return text
