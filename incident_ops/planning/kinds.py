"""Which catalog action a runbook step asks for, read from its verb and object.

"Roll back the deployment" is ``rollback_deployment``; "add a read replica
and raise the connection pool limit" is ``scale_database``; a step that
asks for something the commander cannot do ("cancel runaway queries") is
``manual``. Rules are tried in order, so database scaling is recognised
before generic scaling. Negated steps ("do not roll back") are manual.
"""

import re

from incident_ops.actions import MANUAL


def _rule(verbs: str,
          objects: str | None = None) -> tuple[re.Pattern, re.Pattern | None]:
    return (re.compile(verbs, re.IGNORECASE),
            re.compile(objects, re.IGNORECASE) if objects else None)


# "--replicas=N" on a deployment scales the service, not the database.
_DATABASE = r"database|\bdb\b|(?<![-\w])replicas?\b|connection pool|" \
            r"pool (?:size|limit)|max_connections|postgres|mysql"

KIND_RULES = (
    ("rollback_deployment", _rule(
        r"\broll(?:ing|ed)?[ -]?back\b|\brevert|\bundo\b",
        r"deploy|release|version|rollout|change|build|\bundo\b")),
    ("scale_database", _rule(
        r"\bscale|\badd\b|\braise|\bincrease|\bgrow|\bexpand|\bprovision", _DATABASE)),
    ("restart_instances", _rule(
        r"\brestart|\breboot|\brecycle|\bbounce",
        r"instance|\bpods?\b|service|process|container|deployment|server|"
        r"\bapp|worker|\bnodes?\b")),
    ("scale_out", _rule(
        r"\bscale[ -]?(?:out|up)\b|\badd (?:more )?(?:instances|replicas|pods|"
        r"capacity|nodes|workers)|\bmore instances|--replicas|\bscale\b.*\bservice")),
    ("shed_load", _rule(
        r"\bshed\b|load[ -]shedding|rate[ -]limit|\bthrottl|"
        r"drop (?:non-critical|low-priority)")),
    ("enable_circuit_breaker", _rule(r"circuit[ -]breaker|\bfail fast")),
)

_NEGATION = re.compile(r"\b(?:do not|don't|never|avoid|unsafe|instead of)\b",
                       re.IGNORECASE)
# Where an imperative step's main clause ends: "Capture a heap profile before
# the instance is restarted" asks for a capture, not a restart.
_SUBORDINATE = re.compile(r"\b(?:before|after|until|unless|while|so that|so)\b",
                          re.IGNORECASE)


def kind_of(action: str) -> str:
    """The catalog kind ``action`` asks for, or ``manual``."""
    head = action
    # "... rollback unsafe; roll forward with a hotfix instead": a negated
    # clause names an action the step tells us not to take.
    for boundary in (_NEGATION, _SUBORDINATE):
        found = boundary.search(head)
        if found:
            head = head[:found.start()]
    for kind, (verbs, objects) in KIND_RULES:
        verb = verbs.search(head)
        if verb is None:
            continue
        if objects is None or objects.search(head):
            return kind
    return MANUAL
