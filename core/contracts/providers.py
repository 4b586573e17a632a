"""What a provider can do, by name: the workflow refuses an action its machine's provider
cannot do (with the provider's own reason), before anything is recorded."""

from __future__ import annotations

from enum import StrEnum


class ProviderFeature(StrEnum):
    OFFER_MARKETPLACE = "offer_marketplace"  # live offers to search (vast.ai)
    MACHINE_CATALOGUE = "machine_catalogue"  # machine types with list prices (GCP)
    STOP_START = "stop_start"  # stop keeping the disk, start again on the same host
    REBOOT = "reboot"
    INSTANCE_SSH_KEYS = "instance_ssh_keys"  # keys attached to a running instance
    ACCOUNT_SSH_KEYS = "account_ssh_keys"  # a key registered once on the account
    GPU_MACHINES = "gpu_machines"
    CPU_MACHINES = "cpu_machines"
