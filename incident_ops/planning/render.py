"""The plan as the console shows it: the MITIGATION PLAN block, then sources."""

import textwrap
from typing import Any

WIDTH = 88
RULE = "=" * 60


def render_plan(plan: dict[str, Any]) -> str:
    """Plain text for a plan dict as ``Plan.to_dict()`` produces it.

    Works on stored plans too, so it never assumes more than the keys
    ``to_dict`` writes; missing lists print as empty sections.
    """
    lines = [RULE, "MITIGATION PLAN", RULE, "Most likely root cause:"]
    lines += _wrapped(plan.get("root_cause") or "unknown", "  ")

    lines += ["", "Immediate actions:"]
    for number, action in enumerate(plan.get("actions") or [], start=1):
        cited = ", ".join(action.get("chunk_ids") or [])
        lines += _wrapped(f"{action['text']} [{action['kind']}] (from {cited})",
                          f"  {number}. ", "     ")
    if not plan.get("actions"):
        lines.append("  none found in the runbooks: escalate to the on-call owner")

    lines += ["", "Next steps:"]
    for step in plan.get("next_steps") or []:
        lines += _wrapped(step, "  - ", "    ")

    lines += [RULE, "Sources:"]
    for source in plan.get("sources") or []:
        lines.append(f"  [{source['chunk_id']}] {source['source']} > "
                     f"{source['heading']}")
    lines.append(f"Written by: {_authorship(plan)}")
    return "\n".join(lines)


def _authorship(plan: dict[str, Any]) -> str:
    if plan.get("plan_source") == "openai":
        return f"OpenAI-compatible model {plan.get('model')}"
    if plan.get("fallback_reason"):
        return f"offline writer (model call failed: {plan['fallback_reason']})"
    return "offline writer"


def _wrapped(text: str, first: str, rest: str | None = None) -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=first,
        subsequent_indent=rest if rest is not None else first,
    ) or [first.rstrip()]
