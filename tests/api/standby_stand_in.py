"""A stand-in for the machine workflow's standby updates, until `MachineWorkflow` has them
(written apart): the same update names and messages, validators with the contract's rules, run
by a real worker on the real Temporal dev server, so the API's calls, its waits and its
translation of refusals (409, 422) are the real ones. Its state is what the updates did."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

from temporalio import workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from core.contracts import machine_workflow_id
    from core.contracts.errors import ErrorType
    from core.contracts.machine import InstanceInfo
    from core.contracts.standby import (
        MigrateInput,
        MigrateResult,
        Side,
        StandbyConfigInput,
        StandbyReason,
        StandbyStatus,
        StandbyView,
        standby_config_problem,
    )
    from core.contracts.states import MachineState

STANDBY_VM = InstanceInfo(
    provider="gcp",
    instance_id="9001",
    label="dumont-m-sb1",
    offer_id="e2-medium@europe-west1-b",
    gpu_name="",
    num_gpus=0,
    price_per_hour=0.0335,
    ssh_host="127.64.1.2",
    ssh_port=2201,
    ssh_user="dumont",
    provider_data={"zone": "europe-west1-b", "machine_type": "e2-medium"},
)
NO_STANDBY = "machine has no standby: enable one first"
ON_STANDBY = "machine is already on its standby"


@dataclass
class StandInState:
    machine_id: str
    state: MachineState
    standby: StandbyStatus = field(default_factory=StandbyStatus)
    configured: list[StandbyConfigInput] = field(default_factory=list)
    migrations: list[MigrateInput] = field(default_factory=list)


@workflow.defn(name="StandbyStandIn")
class StandbyStandIn:
    @workflow.init
    def __init__(self, machine_id: str, state: str) -> None:
        self.me = StandInState(machine_id=machine_id, state=MachineState(state))

    @workflow.run
    async def run(self, machine_id: str, state: str) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query
    def seen(self) -> StandInState:
        return self.me

    @workflow.update
    def configure_standby(self, input: StandbyConfigInput) -> StandbyView:
        self.me.configured.append(input)
        on = input.config.enabled
        self.me.standby = replace(
            self.me.standby, config=input.config, instance=STANDBY_VM if on else None
        )
        return StandbyView(
            machine_id=self.me.machine_id, state=self.me.state, standby=self.me.standby
        )

    @configure_standby.validator
    def _check_config(self, input: StandbyConfigInput) -> None:
        problem = standby_config_problem(input.config)
        if problem is not None:
            raise ApplicationError(f"{problem[0]}: {problem[1]}", type=ErrorType.INVALID_INPUT)
        if self.me.state in (MachineState.DESTROYING, MachineState.DESTROYED):
            raise ApplicationError("machine is destroyed", type=ErrorType.INVALID_TRANSITION)

    @workflow.update
    def migrate(self, input: MigrateInput) -> MigrateResult:
        self.me.migrations.append(input)
        to_cpu = input.to is Side.CPU
        self.me.state = MachineState.STANDBY if to_cpu else MachineState.RUNNING
        self.me.standby = replace(
            self.me.standby, side=input.to, reason=StandbyReason.REQUESTED if to_cpu else None
        )
        return MigrateResult(
            machine_id=self.me.machine_id, state=self.me.state, side=input.to, instance=None
        )

    @migrate.validator
    def _check_migrate(self, input: MigrateInput) -> None:
        if not self.me.standby.config.enabled:
            raise ApplicationError(NO_STANDBY, type=ErrorType.INVALID_TRANSITION)
        if input.to is self.me.standby.side:
            words = ON_STANDBY if input.to is Side.CPU else "machine is already on a GPU"
            raise ApplicationError(words, type=ErrorType.INVALID_TRANSITION)


@dataclass
class StandIns:
    client: Client
    task_queue: str

    async def start(self, machine_id: str, state: str = "running") -> None:
        await self.client.start_workflow(
            StandbyStandIn.run,
            args=[machine_id, state],
            id=machine_workflow_id(machine_id),
            task_queue=self.task_queue,
        )

    async def seen(self, machine_id: str) -> StandInState:
        handle = self.client.get_workflow_handle(machine_workflow_id(machine_id))
        return await handle.query(StandbyStandIn.seen)


@asynccontextmanager
async def stand_ins(client: Client) -> AsyncIterator[StandIns]:
    queue = f"standby-stand-in-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[StandbyStandIn]):
        yield StandIns(client, queue)
