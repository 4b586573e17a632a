"""The silent-agent sweep's window: a machine with a standby is declared silent after 1.5
agent intervals (its workflow then asks the provider before moving anything), every other
machine after three; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine

from core.db import session_scope
from core.metrics.liveness import sweep_offline
from core.models import Machine, MachineStandby
from tests.alerts.helpers import make_machine

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL = 30


def reporting(engine: Engine, silent_for: float, standby: str | None = None) -> str:
    """A running machine whose agent (told online) last reported `silent_for` seconds ago;
    `standby`: "linked" (a standby instance), "none yet" (enabled, no instance yet),
    "disabled" (an instance left from a standby since disabled)."""
    machine = make_machine(engine)
    with session_scope(engine) as session:
        session.execute(
            update(Machine)
            .where(Machine.id == machine.id)  # type: ignore[arg-type]
            .values(
                agent_online=True,
                agent_busy=False,
                last_report_at=NOW - timedelta(seconds=silent_for),
                report_interval_seconds=INTERVAL,
            )
        )
        if standby is not None:
            session.add(
                MachineStandby(
                    machine_id=machine.id,
                    enabled=standby != "disabled",
                    instance_id=None if standby == "none yet" else "sb-1",
                )
            )
    return machine.id


def swept(engine: Engine) -> set[str]:
    transitions = sweep_offline(engine, NOW)
    assert all(not t.report.online and t.report.at == NOW for t in transitions)
    return {t.machine_id for t in transitions}


def test_a_machine_with_a_standby_is_silent_after_one_and_a_half_intervals(
    engine: Engine,
) -> None:
    late = reporting(engine, 1.5 * INTERVAL + 1, standby="linked")
    on_time = reporting(engine, 1.5 * INTERVAL - 1, standby="linked")
    assert swept(engine) == {late}
    assert on_time not in swept(engine)  # and the one marked is not marked twice
    assert swept(engine) == set()


def test_other_machines_keep_three_intervals(engine: Engine) -> None:
    plain = reporting(engine, 2 * INTERVAL)
    no_instance = reporting(engine, 2 * INTERVAL, standby="none yet")
    disabled = reporting(engine, 2 * INTERVAL, standby="disabled")
    assert swept(engine) == set()
    gone = reporting(engine, 3 * INTERVAL + 1)
    assert swept(engine) == {gone}
    assert {plain, no_instance, disabled}.isdisjoint(swept(engine))
