"""Which alerts fire and which resolve, from rules, recent samples and the alerts already open.

A pure function of its inputs (the clock included), so every rule can be tested at exact times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.alerts.rules import LABELS, Rule, RuleKind
from core.contracts.states import UP_STATES

# Machine states in which an agent reports and rules apply; alerts of any other state resolve.
# Reports further apart than this many intervals break a "held for" run, and a newest sample
# older than that says nothing about now.
STALE_AFTER_INTERVALS = 3


@dataclass(frozen=True)
class Sample:
    at: datetime
    gpu_utilization: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None

    def value(self, kind: RuleKind) -> float | None:
        if kind is RuleKind.GPU_UTILIZATION:
            return self.gpu_utilization
        if kind is RuleKind.MEMORY_USAGE:
            return self.memory_percent
        if kind is RuleKind.DISK_USAGE:
            return self.disk_percent
        return None


@dataclass(frozen=True)
class MachineWindow:
    """One machine's recent history: samples oldest first, none later than `now`."""

    machine_id: str
    owner_id: str
    state: str
    up_since: datetime | None = None
    last_report_at: datetime | None = None
    report_interval_seconds: int = 30
    samples: tuple[Sample, ...] = ()

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.report_interval_seconds * STALE_AFTER_INTERVALS)


@dataclass(frozen=True)
class OpenAlert:
    alert_id: int
    machine_id: str
    owner_id: str
    kind: RuleKind


class Change(StrEnum):
    FIRE = "firing"
    RESOLVE = "resolved"


@dataclass(frozen=True)
class AlertTransition:
    change: Change
    machine_id: str
    owner_id: str
    kind: RuleKind
    reason: str
    value: float | None = None
    threshold: float | None = None
    alert_id: int | None = None  # the alert a resolve closes


@dataclass(frozen=True)
class _Verdict:
    """`active` True: the rule's condition holds (long enough); False: it clearly does not;
    None: not known, or not held long enough yet — nothing changes."""

    active: bool | None
    value: float | None = None
    reason: str = ""


def evaluate(
    rules: Mapping[str, Sequence[Rule]],
    windows: Sequence[MachineWindow],
    open_alerts: Sequence[OpenAlert],
    now: datetime,
) -> list[AlertTransition]:
    """The alerts to open and to close at `now`. `rules` is by owner id; a machine whose owner
    has no rule of a kind (or has it disabled) gets none of that kind, and its open ones close."""
    transitions: list[AlertTransition] = []
    open_by_machine: dict[str, dict[RuleKind, OpenAlert]] = {}
    for alert in open_alerts:
        open_by_machine.setdefault(alert.machine_id, {})[alert.kind] = alert
    seen: set[str] = set()
    for window in windows:
        seen.add(window.machine_id)
        transitions += _machine_transitions(
            {rule.kind: rule for rule in rules.get(window.owner_id, ())},
            window,
            open_by_machine.get(window.machine_id, {}),
            now,
        )
    for machine_id, gone in open_by_machine.items():
        if machine_id not in seen:
            for alert in gone.values():
                transitions.append(_resolve(alert, "machine no longer exists"))
    return transitions


def _machine_transitions(
    rules: Mapping[RuleKind, Rule],
    window: MachineWindow,
    open_alerts: Mapping[RuleKind, OpenAlert],
    now: datetime,
) -> list[AlertTransition]:
    if window.state not in UP_STATES:
        return [_resolve(alert, f"machine is {window.state}") for alert in open_alerts.values()]
    transitions: list[AlertTransition] = []
    for kind in RuleKind:
        rule, alert = rules.get(kind), open_alerts.get(kind)
        if rule is None or not rule.enabled:
            if alert is not None:
                transitions.append(_resolve(alert, f"{LABELS[kind]} rule off"))
            continue
        verdict = _judge(rule, window, now)
        if verdict.active is True and alert is None:
            transitions.append(
                AlertTransition(
                    Change.FIRE,
                    window.machine_id,
                    window.owner_id,
                    kind,
                    verdict.reason,
                    value=verdict.value,
                    threshold=rule.threshold,
                )
            )
        elif verdict.active is False and alert is not None:
            transitions.append(
                _resolve(alert, verdict.reason, verdict.value, threshold=rule.threshold)
            )
    return transitions


def _resolve(
    alert: OpenAlert,
    reason: str,
    value: float | None = None,
    *,
    threshold: float | None = None,
) -> AlertTransition:
    return AlertTransition(
        Change.RESOLVE,
        alert.machine_id,
        alert.owner_id,
        alert.kind,
        reason,
        value=value,
        threshold=threshold,
        alert_id=alert.alert_id,
    )


def _judge(rule: Rule, window: MachineWindow, now: datetime) -> _Verdict:
    if rule.kind is RuleKind.MACHINE_OFFLINE:
        return _judge_offline(rule, window, now)
    return _judge_metric(rule, window, now)


def _judge_offline(rule: Rule, window: MachineWindow, now: datetime) -> _Verdict:
    heard = [t for t in (window.last_report_at, window.up_since) if t is not None]
    if not heard:
        return _Verdict(None)
    silent = now - max(heard)
    if silent >= timedelta(seconds=rule.duration_seconds):
        return _Verdict(True, silent.total_seconds(), f"no agent report for {_span(silent)}")
    return _Verdict(False, silent.total_seconds(), "agent reporting again")


def _judge_metric(rule: Rule, window: MachineWindow, now: datetime) -> _Verdict:
    assert rule.threshold is not None
    samples = [s for s in window.samples if s.at <= now]
    if not samples or now - samples[-1].at > window.stale_after:
        return _Verdict(None)
    newest = samples[-1]
    value = newest.value(rule.kind)
    label, limit = LABELS[rule.kind], f"{rule.threshold:g}%"
    if value is None:
        return _Verdict(None)
    if value <= rule.threshold:
        return _Verdict(False, value, f"{label} {value:.0f}%, back at or below {limit}")
    # How long it has been above: back through consecutive samples still above the threshold.
    run_start = later = newest.at
    for sample in reversed(samples[:-1]):
        earlier = sample.value(rule.kind)
        if earlier is None or earlier <= rule.threshold or later - sample.at > window.stale_after:
            break
        run_start = later = sample.at
    held = newest.at - run_start
    if held < timedelta(seconds=rule.duration_seconds):
        return _Verdict(None, value)
    reason = f"{label} {value:.0f}%, above {limit}"
    if rule.duration_seconds:
        reason += f" for {_span(held)}"
    return _Verdict(True, value, reason)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
