"""Each default rule fires and resolves at the right time: the pure evaluation, with the clock
given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.alerts.evaluate import (
    AlertTransition,
    Change,
    MachineWindow,
    OpenAlert,
    Sample,
    evaluate,
)
from core.alerts.rules import DEFAULT_RULES, Rule, RuleKind

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
OWNER = "u_alice"
RULES = {OWNER: list(DEFAULT_RULES)}
EVERY = timedelta(seconds=30)


def window(
    samples: list[Sample],
    *,
    state: str = "running",
    up_since: datetime = T0 - timedelta(hours=1),
    last_report_at: datetime | None = None,
) -> MachineWindow:
    """Machine m1 of OWNER; its last report is its newest sample unless said otherwise."""
    if last_report_at is None and samples:
        last_report_at = samples[-1].at
    return MachineWindow(
        machine_id="m1",
        owner_id=OWNER,
        state=state,
        up_since=up_since,
        last_report_at=last_report_at,
        samples=tuple(samples),
    )


def gpu(percent: float, start: datetime, until: datetime) -> list[Sample]:
    """A sample every 30 s from start to until, both included."""
    out, at = [], start
    while at <= until:
        out.append(Sample(at=at, gpu_utilization=percent, memory_percent=20, disk_percent=30))
        at += EVERY
    return out


def opened(transitions: list[AlertTransition], alert_id: int = 1) -> list[OpenAlert]:
    return [
        OpenAlert(alert_id, t.machine_id, t.owner_id, t.kind)
        for t in transitions
        if t.change is Change.FIRE
    ]


def test_gpu_above_90_fires_after_five_minutes_and_resolves_when_it_drops() -> None:
    at_4_min = T0 + timedelta(minutes=4)
    assert evaluate(RULES, [window(gpu(95, T0, at_4_min))], [], at_4_min) == []
    at_4_59 = T0 + timedelta(minutes=4, seconds=59)
    assert evaluate(RULES, [window(gpu(95, T0, at_4_59))], [], at_4_59) == []

    at_5_min = T0 + timedelta(minutes=5)
    (fired,) = evaluate(RULES, [window(gpu(95, T0, at_5_min))], [], at_5_min)
    assert (fired.change, fired.kind, fired.value, fired.threshold) == (
        Change.FIRE,
        RuleKind.GPU_UTILIZATION,
        95,
        90.0,
    )
    assert fired.reason == "GPU utilisation 95%, above 90% for 5 min"

    # Still above: the open alert stays, nothing new fires.
    at_6_min = T0 + timedelta(minutes=6)
    still = gpu(95, T0, at_6_min)
    assert evaluate(RULES, [window(still)], opened([fired]), at_6_min) == []

    dropped = [*still, Sample(at=at_6_min + EVERY, gpu_utilization=40)]
    (resolved,) = evaluate(RULES, [window(dropped)], opened([fired]), at_6_min + EVERY)
    assert (resolved.change, resolved.kind, resolved.alert_id) == (
        Change.RESOLVE,
        RuleKind.GPU_UTILIZATION,
        1,
    )
    assert resolved.reason == "GPU utilisation 40%, back at or below 90%"


def test_gpu_run_restarts_after_a_dip_or_a_gap_in_reports() -> None:
    now = T0 + timedelta(minutes=8)
    before = gpu(95, T0, T0 + timedelta(minutes=4))
    dip = Sample(at=T0 + timedelta(minutes=4, seconds=30), gpu_utilization=50)
    after = gpu(95, T0 + timedelta(minutes=5), now)  # 3 min above since the dip
    assert evaluate(RULES, [window([*before, dip, *after])], [], now) == []

    # Reports 10 minutes apart say nothing about the time between them.
    sparse = [Sample(at=now - timedelta(minutes=10), gpu_utilization=95)] + gpu(95, now, now)
    assert evaluate(RULES, [window(sparse)], [], now) == []


def test_exactly_at_the_threshold_does_not_fire() -> None:
    samples = gpu(90, T0, T0 + timedelta(minutes=10))
    assert evaluate(RULES, [window(samples)], [], T0 + timedelta(minutes=10)) == []


def test_disk_above_85_fires_at_once_and_resolves() -> None:
    (fired,) = evaluate(RULES, [window([Sample(at=T0, disk_percent=86)])], [], T0)
    assert (fired.kind, fired.value) == (RuleKind.DISK_USAGE, 86)
    assert fired.reason == "disk usage 86%, above 85%"
    assert evaluate(RULES, [window([Sample(at=T0, disk_percent=85)])], [], T0) == []

    later = T0 + EVERY
    (resolved,) = evaluate(
        RULES, [window([Sample(at=later, disk_percent=60)])], opened([fired]), later
    )
    assert (resolved.change, resolved.kind) == (Change.RESOLVE, RuleKind.DISK_USAGE)


def test_memory_above_90_fires() -> None:
    (fired,) = evaluate(RULES, [window([Sample(at=T0, memory_percent=91)])], [], T0)
    assert (fired.kind, fired.value) == (RuleKind.MEMORY_USAGE, 91)
    assert evaluate(RULES, [window([Sample(at=T0, memory_percent=90)])], [], T0) == []


def test_offline_after_three_intervals_without_a_report_and_back_online() -> None:
    last = T0
    quiet = window([], last_report_at=last)
    assert evaluate(RULES, [quiet], [], last + timedelta(seconds=89)) == []
    (fired,) = evaluate(RULES, [quiet], [], last + timedelta(seconds=90))
    assert (fired.kind, fired.reason) == (RuleKind.MACHINE_OFFLINE, "no agent report for 90 s")

    back = T0 + timedelta(minutes=5)
    (resolved,) = evaluate(
        RULES, [window([], last_report_at=back)], opened([fired]), back + timedelta(seconds=5)
    )
    assert (resolved.change, resolved.reason) == (Change.RESOLVE, "agent reporting again")


def test_a_machine_that_never_reported_is_offline_three_intervals_after_it_came_up() -> None:
    up = T0
    fresh = window([], up_since=up, last_report_at=T0 - timedelta(days=1))  # an old boot's
    assert evaluate(RULES, [fresh], [], up + timedelta(seconds=60)) == []
    (fired,) = evaluate(RULES, [fresh], [], up + timedelta(seconds=90))
    assert fired.kind is RuleKind.MACHINE_OFFLINE


def test_stale_samples_neither_fire_nor_resolve() -> None:
    old = gpu(95, T0, T0 + timedelta(minutes=10))
    later = T0 + timedelta(minutes=30)
    stale = window(old, last_report_at=later)  # reports arrive, but no GPU numbers lately
    assert evaluate(RULES, [stale], [], later) == []
    open_gpu = [OpenAlert(7, "m1", OWNER, RuleKind.GPU_UTILIZATION)]
    assert evaluate(RULES, [stale], open_gpu, later) == []


def test_stopping_a_machine_or_turning_a_rule_off_resolves_its_alerts() -> None:
    open_disk = [OpenAlert(3, "m1", OWNER, RuleKind.DISK_USAGE)]
    (resolved,) = evaluate(RULES, [window([], state="stopped")], open_disk, T0)
    assert (resolved.change, resolved.reason, resolved.alert_id) == (
        Change.RESOLVE,
        "machine is stopped",
        3,
    )
    # Nothing fires on a stopped machine, however full its disk was.
    full = window([Sample(at=T0, disk_percent=99)], state="stopped")
    assert evaluate(RULES, [full], [], T0) == []

    off = {OWNER: [Rule(RuleKind.DISK_USAGE, 85.0, 0, enabled=False)]}
    still_full = window([Sample(at=T0, disk_percent=99)])
    (resolved,) = evaluate(off, [still_full], open_disk, T0)
    assert resolved.reason == "disk usage rule off"
    assert evaluate(off, [still_full], [], T0) == []


def test_rules_are_per_owner() -> None:
    strict = {OWNER: [Rule(RuleKind.DISK_USAGE, 50.0, 0)], "u_bob": list(DEFAULT_RULES)}
    bobs = MachineWindow("m2", "u_bob", "running", samples=(Sample(at=T0, disk_percent=60),))
    alices = window([Sample(at=T0, disk_percent=60)])
    (fired,) = evaluate(strict, [alices, bobs], [], T0)
    assert (fired.machine_id, fired.owner_id) == ("m1", OWNER)


def test_open_alerts_of_a_machine_that_is_gone_resolve() -> None:
    (resolved,) = evaluate(RULES, [], [OpenAlert(9, "gone", OWNER, RuleKind.DISK_USAGE)], T0)
    assert (resolved.alert_id, resolved.owner_id, resolved.reason) == (
        9,
        OWNER,
        "machine no longer exists",
    )
