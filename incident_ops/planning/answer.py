"""Reading a model's answer into a plan, keeping only what is grounded.

Parsing forgives the usual wrappings (a Markdown fence, a sentence before
or after the object, trailing commas, typographic quotes). Validation
rejects, and lists, every action that names a kind outside the catalog
without marking it manual, and every chunk id that was not in the prompt;
an action left with no valid citation is rejected whole. The sources are
rebuilt from the surviving citations, never taken from the answer.
"""

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from incident_ops.actions import MANUAL, is_known
from incident_ops.planning.plan import PlanAction, PlanSourceRef
from incident_ops.retrieval.context import ContextChunk

log = logging.getLogger(__name__)

MAX_ACTIONS = 8
MAX_NEXT_STEPS = 8

_FENCED = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'",
                               "\u2019": "'"})


class AnswerError(Exception):
    """The answer holds no usable plan; the message says what was wrong."""


@dataclass
class ValidatedAnswer:
    root_cause: str
    actions: list[PlanAction]
    next_steps: list[str]
    sources: list[PlanSourceRef]
    rejected: list[str] = field(default_factory=list)


def parse_answer(text: str) -> dict[str, Any]:
    """The JSON object in ``text``; raises ``AnswerError`` if there is none."""
    candidates = [text.strip()]
    fenced = _FENCED.search(text)
    if fenced:
        candidates.append(fenced.group(1).strip())
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])

    for candidate in candidates:
        for repaired in (candidate, _repair(candidate)):
            try:
                parsed = json.loads(repaired)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                return parsed
    snippet = " ".join(text.split())[:80]
    raise AnswerError(f"answer is not a JSON object: {snippet!r}")


def _repair(text: str) -> str:
    return _TRAILING_COMMA.sub(r"\1", text.translate(_SMART_QUOTES))


def validate_answer(data: dict[str, Any],
                    chunks: list[ContextChunk]) -> ValidatedAnswer:
    """The grounded parts of a parsed answer.

    Raises ``AnswerError`` when no root cause or no grounded action is left.
    """
    root_cause = data.get("root_cause")
    if not isinstance(root_cause, str) or not root_cause.strip():
        raise AnswerError("answer has no root_cause text")

    by_id = {chunk.chunk_id: chunk for chunk in chunks}
    rejected: list[str] = []
    actions: list[PlanAction] = []
    raw_actions = data.get("actions")
    if not isinstance(raw_actions, list):
        raise AnswerError("answer has no list of actions")

    for number, raw in enumerate(raw_actions[:MAX_ACTIONS], start=1):
        action = _validate_action(number, raw, by_id, rejected)
        if action is not None:
            actions.append(action)
    if not actions:
        raise AnswerError(
            f"no grounded action among {len(raw_actions)} in the answer"
            + (f" ({'; '.join(rejected)})" if rejected else ""))

    for reason in rejected:
        log.warning("rejected from the model's plan: %s", reason)

    cited = dict.fromkeys(c for action in actions for c in action.chunk_ids)
    return ValidatedAnswer(
        root_cause=" ".join(root_cause.split()),
        actions=actions,
        next_steps=_next_steps(data.get("next_steps")),
        sources=[PlanSourceRef(chunk_id=c, source=by_id[c].source,
                               heading=by_id[c].heading) for c in cited],
        rejected=rejected,
    )


def _validate_action(number: int, raw: Any, by_id: dict[str, ContextChunk],
                     rejected: list[str]) -> PlanAction | None:
    if not isinstance(raw, dict):
        rejected.append(f"action {number} is not an object")
        return None
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        rejected.append(f"action {number} has no text")
        return None
    text = " ".join(text.split())

    kind = str(raw.get("kind") or "").strip().lower()
    if kind != MANUAL and not is_known(kind):
        rejected.append(f"action {number} ({text[:50]!r}): kind {kind!r} is not "
                        "in the catalog and not marked manual")
        return None

    cited = raw.get("chunk_ids", raw.get("chunk_id", []))
    if isinstance(cited, str):
        cited = [cited]
    if not isinstance(cited, list):
        cited = []
    known = [str(c) for c in cited if str(c) in by_id]
    unknown = [str(c) for c in cited if str(c) not in by_id]
    if unknown:
        rejected.append(f"action {number} cites chunk ids not in the context: "
                        f"{', '.join(unknown)}")
    if not known:
        rejected.append(f"action {number} ({text[:50]!r}) rejected: it cites "
                        "no chunk from the context")
        return None
    return PlanAction(text=text, kind=kind, chunk_ids=tuple(dict.fromkeys(known)))


def _next_steps(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        return []
    steps = []
    for item in raw[:MAX_NEXT_STEPS]:
        if isinstance(item, dict):
            item = item.get("text")
        if isinstance(item, str) and item.strip():
            steps.append(" ".join(item.split()))
    return steps
