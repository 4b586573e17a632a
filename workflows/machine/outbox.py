"""The outbox's flusher: writes what the workflow recorded to the database, oldest first, in
batches, outside the workflow's lock, retrying for as long as the database is out. Each record
is numbered, and the database applies a number once, so a batch sent twice (a retry whose answer
was lost, or a batch carried across continue-as-new while its write was in flight) changes
nothing."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.contracts.activities import ActivityName
    from core.contracts.records import PendingRecord, RecordBatchInput, RecordBatchResult
    from core.contracts.workflow import MachineSnapshot
    from workflows.machine import activities

# Records per write: a long outage's backlog goes out in a few transactions, not hundreds.
BATCH = 100


class Outbox:
    def __init__(self, snapshot: MachineSnapshot) -> None:
        self._s = snapshot

    def add(self, record: PendingRecord) -> None:
        s = self._s
        record.number = s.counters["records"] = s.counters.get("records", 0) + 1
        s.outbox.append(record)

    @property
    def empty(self) -> bool:
        return not self._s.outbox

    @property
    def last_number(self) -> int:
        return self._s.counters.get("records", 0)

    async def written(self, through: int) -> None:
        """Until every record up to `through` is written. No timer: a timer cancelled by the
        write would cost two history events per answer."""
        s = self._s
        await workflow.wait_condition(lambda: not s.outbox or s.outbox[0].number > through)

    async def drained(self) -> None:
        """Until the database has every record (before the run ends)."""
        await workflow.wait_condition(lambda: not self._s.outbox)

    async def flush_forever(self) -> None:
        s = self._s
        while True:
            await workflow.wait_condition(lambda: bool(s.outbox))
            batch = list(s.outbox[:BATCH])
            result = await activities.call(
                ActivityName.RECORD_BATCH,
                RecordBatchInput(
                    machine_id=s.machine_id, owner_id=s.owner_id, spec=s.spec, records=batch
                ),
                RecordBatchResult,
                s.policy,
                summary=f"record {len(batch)} events and projections",
            )
            # Dropped by number, not position: nothing but this task removes records, but a
            # record is gone only once the database holds it.
            s.outbox[:] = [r for r in s.outbox if r.number > result.applied_through]
