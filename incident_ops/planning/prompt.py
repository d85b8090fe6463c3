"""The chat request for a model-written plan, fitted to its context window.

The request is the system prompt (the plan's JSON shape and the rules),
the incident facts and evidence, and the retrieved runbook chunks. When the
whole does not fit the window minus the completion's reserve, the
lowest-ranked chunks go first; the system prompt and the facts are never
cut. Tokens are counted with tiktoken's cl100k table, offline; other
models' tokenizers differ a little, which ``SAFETY_MARGIN`` absorbs.
"""

import json
from dataclasses import dataclass

from incident_ops.actions import CATALOG, MANUAL
from incident_ops.planning.evidence import RECENT_WINDOW, Evidence
from incident_ops.planning.plan import IncidentFacts
from incident_ops.retrieval.context import Context, ContextChunk
from incident_ops.tokens import count_tokens

# Chat formatting adds a few tokens per message and to prime the reply.
TOKENS_PER_MESSAGE = 4
REPLY_PRIMING_TOKENS = 3
SAFETY_MARGIN = 0.05


class PromptTooLarge(Exception):
    """The system prompt and the facts alone exceed the context window."""


@dataclass
class Prompt:
    messages: list[dict[str, str]]
    chunks: list[ContextChunk]     # the chunks the model sees, in rank order
    dropped: int                   # chunks left out to fit the window
    tokens: int                    # prompt tokens as counted here


def system_prompt() -> str:
    kinds = "\n".join(f'- "{kind}": {meaning}' for kind, meaning in CATALOG.items())
    return f"""You write mitigation plans for production incidents.

Use only the runbook chunks given with the incident. Each chunk starts with
its id in square brackets. Answer with one JSON object and nothing else:

{{
  "root_cause": "the most likely cause in one or two sentences, naming the
                 evidence: metric values, a recent deployment, the runbook section",
  "actions": [
    {{"text": "one immediate action", "kind": "a kind from the list below",
      "chunk_ids": ["ids of the chunks this action comes from"]}}
  ],
  "next_steps": ["follow-up after the service has recovered"]
}}

Rules:
- Order actions by how likely they are to end the incident, best first.
- Every action cites at least one chunk id from the context. Never invent ids.
- "kind" is one of these actions the incident commander can carry out:
{kinds}
  Use "{MANUAL}" for anything else, which a person has to do.
- A deployment in the {RECENT_WINDOW.seconds // 60} minutes before the breach
  makes it the prime suspect; without one, do not propose a rollback.
- At most 5 actions and 5 next steps."""


def facts_message(facts: IncidentFacts, evidence: Evidence) -> str:
    """The incident facts and the evidence read from them, as prompt text."""
    lines = [
        f"Incident on service {facts.service}, detected at {facts.detected_at}.",
        f"- p99 latency: {_value(facts.latency_p99_ms, 'ms')}",
        f"- error rate: {_value(facts.error_rate_pct, '%')}",
        f"- CPU: {_value(facts.cpu_pct, '%')}",
    ]
    for name, value in sorted((facts.signals or {}).items()):
        lines.append(f"- {name}: {value}")

    lines.append("")
    if facts.recent_events:
        lines.append("Recent events, oldest first:")
        lines += [f"- {json.dumps(event, sort_keys=True)}"
                  for event in facts.recent_events]
    else:
        lines.append("Recent events: none recorded.")

    lines += ["", "Evidence read from these facts:"]
    lines += [f"- supports {topic}: {why}" for topic, why in
              evidence.supported.items() if topic in evidence.findings]
    lines += [f"- against {topic}: {why}"
              for topic, why in evidence.contradicted.items()]
    if not evidence.findings and not evidence.contradicted:
        lines.append("- nothing beyond the symptoms")
    return "\n".join(lines)


def build_prompt(facts: IncidentFacts, evidence: Evidence, context: Context,
                 context_tokens: int, completion_tokens: int) -> Prompt:
    """Messages that fit ``context_tokens`` with ``completion_tokens`` spare.

    Raises ``PromptTooLarge`` when the system prompt and facts alone do not.
    """
    system = system_prompt()
    facts_text = facts_message(facts, evidence)
    header = "\n\nRunbook context (best match first):\n\n"
    available = int(context_tokens * (1 - SAFETY_MARGIN)) - completion_tokens
    fixed = (count_tokens(system) + count_tokens(facts_text + header)
             + 2 * TOKENS_PER_MESSAGE + REPLY_PRIMING_TOKENS)
    if fixed > available:
        raise PromptTooLarge(
            f"the system prompt and incident facts need {fixed} tokens, but a "
            f"{context_tokens}-token window with {completion_tokens} reserved "
            f"for the answer leaves {available}")

    kept: list[ContextChunk] = []
    used = fixed
    for chunk in context.chunks:
        cost = count_tokens(Context(chunks=[chunk]).to_markdown() + "\n")
        if used + cost > available:
            break
        kept.append(chunk)
        used += cost

    body = Context(chunks=kept).to_markdown() if kept else "(no runbook matched)"
    return Prompt(
        messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": facts_text + header + body},
        ],
        chunks=kept,
        dropped=len(context.chunks) - len(kept),
        tokens=used,
    )


def _value(number: float | None, unit: str) -> str:
    return "unknown" if number is None else f"{number:g} {unit}"
