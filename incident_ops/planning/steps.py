"""Steps read out of a runbook chunk: list items and imperative sentences.

A chunk may span several sections (the indexer merges tiny ones), so the
section is tracked line by line, starting from the chunk's own heading.
Each step remembers its section's role (act now, verify, follow up) and
splits off a leading condition ("If a deployment preceded the spike, ...")
so the caller can weigh the condition against the incident's evidence.
"""

import re
from dataclasses import dataclass

ROLE_ACTION = "action"
ROLE_VERIFY = "verify"
ROLE_FOLLOW_UP = "follow_up"

_SECTION_ROLES = (
    (ROLE_ACTION, re.compile(
        r"mitigat|immediate|resolution|resolv|remediat|workaround|\bfix|"
        r"\bactions?\b|respon|recover|clean ?up|contain", re.IGNORECASE)),
    (ROLE_VERIFY, re.compile(r"verif|validat|confirm", re.IGNORECASE)),
    (ROLE_FOLLOW_UP, re.compile(
        r"follow|prevent|post-?incident|long[- ]term|lessons|afterwards",
        re.IGNORECASE)),
)

# Steps in an action section that watch rather than change anything.
_OBSERVING_VERBS = re.compile(
    r"^(watch|monitor|confirm|verify|check|observe|look|wait|make sure|ensure)\b",
    re.IGNORECASE)

# First words that make a prose sentence an instruction. List items in an
# action section need none of these: being listed there is enough.
_IMPERATIVE_VERBS = re.compile(
    r"^(roll|revert|undo|restart|reboot|recycle|bounce|scale|add|raise|increase|"
    r"enable|disable|turn|shed|rate-limit|throttle|drain|cordon|cancel|kill|"
    r"terminate|promote|point|fail|stop|freeze|pause|remove|delete|clear|flush|"
    r"purge|rotate|vacuum|expand|grow|resize|block|route|shift|redirect|switch|"
    r"apply|perform|run|execute|page|notify|escalate|lower|reduce|limit|set|"
    r"reset|trip|isolate|evict|move|migrate|rebuild|restore|open|record|keep)\b",
    re.IGNORECASE)

# Known shortcoming: only a leading condition is split off; in "Scale out if
# CPU is pinned" the condition stays in the action text and is not weighed.
_CONDITION = re.compile(
    r"^(?:if|when|whenever|in case|should|once)\b(?P<condition>[^,:;]+?),\s*"
    r"(?:then\s+)?(?P<action>.+)$", re.IGNORECASE | re.DOTALL)

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^(?P<indent>\s*)(?:\d+[.)]|[-*+])\s+(?P<text>.+)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`])")

MAX_STEP_CHARS = 400


@dataclass(frozen=True)
class Step:
    """One instruction as the runbook words it."""

    text: str                 # the whole step, whitespace collapsed
    action: str               # the step without its leading condition
    condition: str | None     # "a deployment preceded the spike", or None
    role: str                 # ROLE_ACTION, ROLE_VERIFY or ROLE_FOLLOW_UP
    section: str
    position: int             # order within the chunk

    @property
    def states_a_check(self) -> bool:
        """A verify item worded as a target ("p99 below 1 s"), not a verb."""
        return self.role == ROLE_VERIFY and not (
            _IMPERATIVE_VERBS.match(self.action) or _OBSERVING_VERBS.match(self.action))


def section_role(heading: str) -> str | None:
    """The role of a section by its heading, or None for other sections."""
    for role, pattern in _SECTION_ROLES:
        if pattern.search(heading):
            return role
    return None


def extract_steps(text: str, heading: str) -> list[Step]:
    """The steps of every action, verify and follow-up section in ``text``.

    ``heading`` is the chunk's heading path ("Title > Section"); its last
    part names the section the text starts in.
    """
    steps: list[Step] = []
    first_section = _first_section(text, heading)
    for section, items, prose in _sections(text, first_section):
        role = section_role(section)
        if role is None:
            continue
        candidates = items or [s for s in prose if _IMPERATIVE_VERBS.match(s)]
        for raw in candidates:
            step = _make_step(raw, role, section, len(steps))
            if step is not None:
                steps.append(step)
    return steps


def _first_section(text: str, heading: str) -> str:
    """The section ``text`` starts in.

    A chunk merged from several sections is headed "Mitigation, Verify"
    and carries "## Verify" inside its text; the names that reappear as
    headings in the text are not where it starts.
    """
    last = heading.split(">")[-1].strip()
    inner = {match["title"] for line in text.splitlines()
             if (match := _HEADING.match(line))}
    parts = last.split(", ")
    while len(parts) > 1 and parts[-1] in inner:
        parts.pop()
    return ", ".join(parts)


def _make_step(raw: str, role: str, section: str, position: int) -> Step | None:
    text = " ".join(raw.split())[:MAX_STEP_CHARS]
    if len(text) < 4:
        return None
    condition = None
    action = text
    match = _CONDITION.match(text)
    if match:
        condition = match["condition"].strip()
        action = match["action"].strip()
    if role == ROLE_ACTION and _OBSERVING_VERBS.match(action):
        role = ROLE_VERIFY
    return Step(text=text, action=action, condition=condition, role=role,
                section=section, position=position)


def _sections(text: str, first_section: str):
    """Yield ``(section, list_items, prose_sentences)`` in text order."""
    section = first_section
    items: list[str] = []
    paragraphs: list[str] = []
    current: list[str] | None = None   # lines of the item or paragraph being read
    current_is_item = False
    in_fence = False

    def close_block() -> None:
        nonlocal current
        if current:
            (items if current_is_item else paragraphs).append(" ".join(current))
        current = None

    def finished_section():
        close_block()
        sentences = [s for p in paragraphs for s in _SENTENCE_END.split(p)]
        return section, list(items), sentences

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        heading = _HEADING.match(line)
        if heading:
            yield finished_section()
            section = heading["title"]
            items.clear()
            paragraphs.clear()
            continue
        if not line.strip():
            close_block()
            continue
        item = _LIST_ITEM.match(line)
        if item and len(item["indent"]) <= 1:
            close_block()
            current, current_is_item = [item["text"]], True
        elif current is not None:
            current.append(line.strip())
        else:
            current, current_is_item = [line.strip()], False
    yield finished_section()
