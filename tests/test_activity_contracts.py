"""Activity names, the worker's registrations and the test fakes agree: an activity added to
`ActivityName` but not registered (or registered under another name) would leave its workflow
waiting forever on a task nobody takes, and a fake that stands in for less than the workflow
calls would hide it."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from core.contracts.activities import ActivityName
from core.contracts.machine import LifecyclePolicy
from core.contracts.schedules import SEND_SCHEDULED_ACTION
from core.settings import Settings
from core.snapshots.store import ObjectStore
from core.ssh import ensure_identity
from providers.registry import ProviderRegistry
from tests.workflows.fakes import FakeCloud
from worker import worker_activities
from workflows.machine.activities import called_by_name

REPO = Path(__file__).resolve().parent.parent


def names(functions: list[Callable[..., Any]]) -> list[str]:
    # The SDK's own reading of @activity.defn (private, pinned with temporalio 1.35).
    return [str(activity._Definition.must_from_callable(fn).name) for fn in functions]


def monitor_calls() -> set[str]:
    """The activity names the fleet monitor's code mentions."""
    tree = ast.parse((REPO / "workflows" / "monitor.py").read_text())
    return {
        ActivityName[node.attr].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "ActivityName"
    }


async def test_the_worker_registers_every_activity_once_by_its_contract_name(
    dev_env: WorkflowEnvironment, sqlite_engine: Engine, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path)
    registry = ProviderRegistry.from_settings(settings)
    registered = names(
        worker_activities(
            dev_env.client,
            settings,
            providers=registry,
            identity=ensure_identity(settings.ssh_key_path),
            engine=sqlite_engine,
            store=ObjectStore.from_settings(settings),
        )
    )
    await registry.aclose()
    assert len(registered) == len(set(registered)), "an activity is registered twice"
    assert set(registered) == {name.value for name in ActivityName} | {SEND_SCHEDULED_ACTION}


def test_every_name_is_called_by_a_workflow() -> None:
    machine = {name.value for name in called_by_name()}
    assert machine | monitor_calls() == {name.value for name in ActivityName}
    assert machine.isdisjoint(monitor_calls())


def test_the_fakes_stand_in_for_every_activity_the_machine_workflow_calls() -> None:
    faked = names(FakeCloud(LifecyclePolicy()).activities())
    assert len(faked) == len(set(faked))
    assert set(faked) == {name.value for name in called_by_name()}
