"""The machine workflow, by capability: `workflow.py` is the message surface, `kernel.py` the
state, lock and records, and one module per capability (provisioning, agent, idleness,
hibernation)."""

from workflows.machine.workflow import MachineWorkflow

__all__ = ["MachineWorkflow"]
