"""Where a machine's files live on disk and how its processes see them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WORKSPACE_MOUNTPOINT = "/workspace"
# Environment markers that let the sim find every process a machine started, even daemons.
MARKER_ID = "DUMONT_SANDBOX_ID"
MARKER_DIR = "DUMONT_SANDBOX_DIR"


@dataclass(frozen=True)
class MachineLayout:
    instance_id: int
    root: Path
    # True: sessions run in a private mount namespace with the workspace at /workspace.
    namespace: bool

    @classmethod
    def for_instance(cls, data_dir: Path, instance_id: int, namespace: bool) -> MachineLayout:
        return cls(instance_id, (data_dir / "machines" / str(instance_id)).resolve(), namespace)

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def home(self) -> Path:
        return self.root / "root"

    @property
    def sim_dir(self) -> Path:
        """The sim's own files about the machine (host key, GPU load, onstart log)."""
        return self.root / ".sim"

    @property
    def host_key(self) -> Path:
        return self.sim_dir / "ssh_host_ed25519_key"

    @property
    def gpu_file(self) -> Path:
        return self.sim_dir / "gpu.json"

    @property
    def onstart_log(self) -> Path:
        return self.sim_dir / "onstart.log"

    @property
    def visible_workspace(self) -> str:
        """The workspace path as commands on the machine see it."""
        return WORKSPACE_MOUNTPOINT if self.namespace else str(self.workspace)

    def create(self) -> None:
        for path in (self.workspace, self.home / ".ssh", self.sim_dir):
            path.mkdir(parents=True, exist_ok=True)

    def markers(self) -> dict[str, str]:
        return {MARKER_ID: str(self.instance_id), MARKER_DIR: str(self.root)}

    def to_host(self, visible: str) -> str:
        """A path as the machine names it -> the path on this host (for SFTP)."""
        if not visible.startswith("/"):
            visible = f"{self.visible_workspace}/{visible}"
        if self.namespace and (
            visible == WORKSPACE_MOUNTPOINT or visible.startswith(WORKSPACE_MOUNTPOINT + "/")
        ):
            return str(self.workspace) + visible[len(WORKSPACE_MOUNTPOINT) :]
        return visible

    def to_visible(self, host: str) -> str:
        workspace = str(self.workspace)
        if self.namespace and (host == workspace or host.startswith(workspace + "/")):
            return WORKSPACE_MOUNTPOINT + host[len(workspace) :]
        return host
