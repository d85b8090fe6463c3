"""Incidents as the console shows them: the banner, status lines, summaries."""

from datetime import datetime

from incident_ops.detection import Rules
from incident_ops.metrics import Sample, format_metrics, parse_time

RULE = "=" * 60


def stamp(moment: datetime | str) -> str:
    if isinstance(moment, str):
        moment = parse_time(moment)
    return moment.strftime("[%Y-%m-%dT%H:%M:%S]")


def banner(incident: dict, rules: Rules, events: list[dict]) -> str:
    """The INCIDENT DETECTED block printed when an incident opens."""
    trigger = incident["trigger"]
    lines = [
        RULE,
        f"INCIDENT DETECTED: {incident['id']} ({incident['service']})",
        RULE,
        f"  Latency P99: {_value(trigger['latency_p99_ms'], '{:.0f}ms')} "
        f"(threshold {rules.trigger_p99_ms:g}ms)",
        f"  Error Rate:  {_value(trigger['error_rate_pct'], '{:.1f}%')} "
        f"(threshold {rules.trigger_error_pct:g}%)",
        f"  CPU:         {_value(trigger['cpu_pct'], '{:.1f}%')}",
        f"  Held for {trigger['samples']} samples in a row, from "
        f"{trigger['first_breach_at']}",
        f"  Opened at {incident['opened_at']}",
    ]
    if events:
        lines.append("  Recent events:")
        lines += [f"    {event['at']} {event['kind']}: {event['description']}"
                  for event in events]
    else:
        lines.append("  Recent events: none in the last 30 minutes")
    lines.append(RULE)
    return "\n".join(lines)


def _value(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def quiet_status(sample: Sample, breach_streak: int, rules: Rules) -> str:
    """One line per sample while no incident is open."""
    if breach_streak:
        label = f"BREACHING {breach_streak}/{rules.trigger_samples}"
    else:
        label = "OK"
    return f"{stamp(sample.at)} {label} | {format_metrics(sample)}"


def no_data_status(when: str, reason: str) -> str:
    return f"{when} no data: {reason}"


def incident_status(sample: Sample, incident: dict, clear_streak: int,
                    rules: Rules, action_note: str) -> str:
    """One line per sample while an incident is open."""
    return (f"{stamp(sample.at)} {incident['id']} {incident['state']} | "
            f"{format_metrics(sample)} | healthy {clear_streak}/"
            f"{rules.clear_samples}{action_note}")


def summary_line(incident: dict) -> str:
    """One line of ``incidents`` output."""
    trigger = incident.get("trigger") or {}
    resolved = incident.get("resolved_at") or "-"
    return (f"{incident['id']}  {incident['state']:<10}  opened "
            f"{incident['opened_at']}  resolved {resolved}  trigger p99 "
            f"{_value(trigger.get('latency_p99_ms'), '{:.0f}ms')}, errors "
            f"{_value(trigger.get('error_rate_pct'), '{:.1f}%')}")


def details(incident: dict, plan_text: str | None) -> str:
    """The ``incidents show`` text: summary, history, actions, plan."""
    lines = [summary_line(incident), "", "History:"]
    lines += [f"  {step['at']}  {step['state']}" for step in incident["history"]]
    lines += ["", "Actions:"]
    for action in incident.get("actions") or []:
        times = ", ".join(f"{name} {action[name]}" for name in
                          ("requested_at", "applied_at", "finished_at")
                          if action.get(name))
        lines.append(f"  {action['seq']}. {action['kind']:<22} {action['status']:<18}"
                     f" {times}")
        if action.get("detail"):
            lines.append(f"       {action['detail']}")
    if not incident.get("actions"):
        lines.append("  none")
    if incident.get("events"):
        lines += ["", "Events:"]
    for event in incident.get("events") or []:
        lines.append(f"  {event['at']}  {event['kind']}: {event['description']}")
    if plan_text:
        lines += ["", plan_text]
    return "\n".join(lines)
