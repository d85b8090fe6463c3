"""A small model of the checkout service, so that mitigation can be measured.

Each scenario injects one fault at a fixed sample count; the fault adds
latency, errors and CPU on top of a healthy baseline. Metrics move towards
their target by a fraction per sample (``RESPONSE``), so a fault or a cure
shows over a few samples rather than at once, and a little seeded noise is
added. Only the right action removes a fault:

=============  ========================  =====================
scenario       fault (from sample)       cure
=============  ========================  =====================
bad-deploy     a deployment at 10        rollback_deployment
db-overload    database saturation at 6  scale_database
memory-leak    leak growing from 3       restart_instances
healthy        none                      -
idle           no traffic at all         -
=============  ========================  =====================

Other catalog actions relieve a share of the fault's load (``RELIEF``),
never enough to bring it below the trigger thresholds. The whole state is
one JSON-able dict, so a restarted collector resumes the same service.
"""

import random
from dataclasses import asdict, dataclass, field

from incident_ops.metrics import error_rate_pct

SCENARIOS = ("bad-deploy", "db-overload", "memory-leak", "healthy", "idle")
DEFAULT_SCENARIO = "bad-deploy"

# The three detection metrics, then the signals a plan writer can weigh
# (names as in ``IncidentFacts.signals``).
BASELINE = {
    "latency_p99_ms": 240.0, "error_rate_pct": 0.8, "cpu_pct": 42.0,
    "db_connections_pct": 35.0, "db_query_p99_ms": 12.0, "memory_pct": 48.0,
}
SIGNALS = ("db_connections_pct", "db_query_p99_ms", "memory_pct")
BASELINE_RPS = 1200.0

# Fraction of the distance to the target covered per sample.
RESPONSE = 0.4

DEPLOY_AT = 10
DB_OVERLOAD_AT = 6
LEAK_FROM = 3
DEPLOYED_VERSION = "checkout-api v2.14.0"

# Full-strength fault impact, added to the baseline.
DEPLOY_IMPACT = {"latency_p99_ms": 1900.0, "error_rate_pct": 11.0, "cpu_pct": 18.0}
DB_IMPACT = {"latency_p99_ms": 2400.0, "error_rate_pct": 8.5, "cpu_pct": 6.0,
             "db_connections_pct": 62.0, "db_query_p99_ms": 850.0}
# Per unit of leaked memory; errors start only once memory is tight.
LEAK_LATENCY_PER_UNIT = 70.0
LEAK_CPU_PER_UNIT = 2.5
LEAK_ERRORS_PER_UNIT = 0.9
LEAK_ERRORS_FROM = 8.0
LEAK_MEMORY_PER_UNIT = 1.7
LEAK_CAP = 30.0

# Share of a fault's impact each general action takes away. Together they
# leave more than half of the impact: helpful, never a cure.
RELIEF = {
    "scale_out": 0.15,
    "shed_load": 0.15,
    "enable_circuit_breaker": 0.10,
    "restart_instances": 0.05,
}

CURES = {
    "bad_deploy": "rollback_deployment",
    "db_overload": "scale_database",
    "memory_leak": "restart_instances",
}


class UnknownScenario(ValueError):
    """A scenario name the model does not have."""


@dataclass
class ServiceModel:
    """The simulated service; ``step`` advances it by one sample."""

    scenario: str = DEFAULT_SCENARIO
    seed: int = 7
    step_count: int = 0
    faults: dict[str, float] = field(default_factory=dict)
    relief: list[str] = field(default_factory=list)
    current: dict[str, float] = field(default_factory=lambda: dict(BASELINE))
    handled_requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise UnknownScenario(
                f"unknown scenario {self.scenario!r}; choose one of "
                f"{', '.join(SCENARIOS)}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict) -> "ServiceModel":
        return cls(**state)

    # -- actions ---------------------------------------------------------

    def apply(self, kind: str, request_id: str) -> str:
        """Apply one requested action; returns what it did, for the record.

        A request already handled (the collector restarted between applying
        and recording it) is not applied twice.
        """
        if request_id in self.handled_requests:
            return "already applied"
        self.handled_requests.append(request_id)

        cured = [fault for fault, cure in CURES.items()
                 if cure == kind and fault in self.faults]
        for fault in cured:
            del self.faults[fault]
        if cured:
            return f"removed the cause: {', '.join(cured)}"
        if kind in RELIEF and kind not in self.relief:
            self.relief.append(kind)
            return f"relieved {RELIEF[kind]:.0%} of the load"
        return "no effect on this service"

    # -- time --------------------------------------------------------------

    def step(self) -> tuple[dict[str, float | None], dict[str, float], list[dict]]:
        """One sample's metrics, its signals, and the events during it."""
        self.step_count += 1
        events = self._advance_scenario()

        if self.scenario == "idle":
            # No requests: no latency to measure and no error rate defined.
            rps = 0.0
            return {"latency_p99_ms": None,
                    "error_rate_pct": error_rate_pct(0, rps),
                    "cpu_pct": self._noisy_cpu(5.0)}, {}, events

        target = self._target()
        for name, value in target.items():
            self.current[name] += (value - self.current[name]) * RESPONSE
        signals = {name: round(self.current[name], 1) for name in SIGNALS}
        return self._observe(), signals, events

    def _advance_scenario(self) -> list[dict]:
        events = []
        if self.scenario == "bad-deploy" and self.step_count == DEPLOY_AT:
            self.faults["bad_deploy"] = 1.0
            events.append({"kind": "deployment",
                           "description": f"deployed {DEPLOYED_VERSION}",
                           "version": DEPLOYED_VERSION})
        if self.scenario == "db-overload" and self.step_count == DB_OVERLOAD_AT:
            self.faults["db_overload"] = 1.0
        if self.scenario == "memory-leak":
            if self.step_count == LEAK_FROM:
                self.faults["memory_leak"] = 0.0
            if "memory_leak" in self.faults:
                leaked = self.faults["memory_leak"] + 1.0
                self.faults["memory_leak"] = min(leaked, LEAK_CAP)
        return events

    def _target(self) -> dict[str, float]:
        impact = {name: 0.0 for name in BASELINE}
        if "bad_deploy" in self.faults:
            _add(impact, DEPLOY_IMPACT)
        if "db_overload" in self.faults:
            _add(impact, DB_IMPACT)
        if "memory_leak" in self.faults:
            leaked = self.faults["memory_leak"]
            _add(impact, {
                "latency_p99_ms": leaked * LEAK_LATENCY_PER_UNIT,
                "cpu_pct": leaked * LEAK_CPU_PER_UNIT,
                "error_rate_pct": max(0.0, leaked - LEAK_ERRORS_FROM)
                * LEAK_ERRORS_PER_UNIT,
                "memory_pct": leaked * LEAK_MEMORY_PER_UNIT,
            })

        remaining = 1.0
        for kind in self.relief:
            remaining -= RELIEF[kind]
        return {name: BASELINE[name] + impact[name] * remaining for name in BASELINE}

    def _observe(self) -> dict[str, float | None]:
        noise = self._noise()
        rps = BASELINE_RPS * (1 + noise.gauss(0, 0.02))
        errors_pct = max(0.0, self.current["error_rate_pct"] + noise.gauss(0, 0.12))
        return {
            "latency_p99_ms": round(
                max(1.0, self.current["latency_p99_ms"] * (1 + noise.gauss(0, 0.03))), 1
            ),
            "error_rate_pct": round(error_rate_pct(rps * errors_pct / 100, rps), 2),
            "cpu_pct": round(min(100.0, max(0.0, self.current["cpu_pct"]
                                             + noise.gauss(0, 1.5))), 1),
        }

    def _noisy_cpu(self, level: float) -> float:
        return round(max(0.0, level + self._noise().gauss(0, 0.5)), 1)

    def _noise(self) -> random.Random:
        # Seeded by sample count, so a resumed model draws the same noise.
        return random.Random(f"{self.seed}:{self.step_count}")


def _add(total: dict[str, float], extra: dict[str, float]) -> None:
    for name, value in extra.items():
        total[name] += value
