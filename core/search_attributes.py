"""Search attributes that let the Temporal Web UI list machines by state, owner and GPU."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

MACHINE_STATE = SearchAttributeKey.for_keyword("MachineState")
MACHINE_OWNER = SearchAttributeKey.for_keyword("MachineOwner")
GPU_NAME = SearchAttributeKey.for_keyword("GpuName")

ALL = (MACHINE_STATE, MACHINE_OWNER, GPU_NAME)


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags that register every key."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
