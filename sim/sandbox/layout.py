"""Where a machine's files live on disk and how its processes see them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WORKSPACE_MOUNTPOINT = "/workspace"
# The agent's install directory: private to each machine, as a container's /opt is.
AGENT_MOUNTPOINT = "/opt/dumont-agent"
# Environment markers that let the sim find every process a machine started, even daemons.
MARKER_ID = "DUMONT_SANDBOX_ID"
MARKER_DIR = "DUMONT_SANDBOX_DIR"


@dataclass(frozen=True)
class MachineLayout:
    instance_id: int
    root: Path
    # True: sessions run in a private mount namespace with the workspace at /workspace.
    namespace: bool
    # The machine's own network namespace (None: it shares the host's network).
    netns: str | None = None

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
    def agent_dir(self) -> Path:
        """What the machine sees at /opt/dumont-agent (in a mount namespace)."""
        return self.root / "opt" / "dumont-agent"

    @property
    def gpu_file(self) -> Path:
        return self.sim_dir / "gpu.json"

    @property
    def ssh_file(self) -> Path:
        """Interactive SSH sessions and the last keystroke, for the agent (no sshd here)."""
        return self.sim_dir / "ssh.json"

    @property
    def pasta_pid_file(self) -> Path:
        """The pid of the pasta that publishes the machine's ports (network.py)."""
        return self.sim_dir / "pasta.pid"

    @property
    def onstart_log(self) -> Path:
        return self.sim_dir / "onstart.log"

    @property
    def visible_workspace(self) -> str:
        """The workspace path as commands on the machine see it."""
        return WORKSPACE_MOUNTPOINT if self.namespace else str(self.workspace)

    def create(self) -> None:
        for path in (self.workspace, self.home / ".ssh", self.sim_dir, self.agent_dir):
            path.mkdir(parents=True, exist_ok=True)

    def private_mounts(self) -> list[tuple[str, Path]]:
        """(mountpoint, host directory) bound in the machine's mount namespace, if it has one."""
        if not self.namespace:
            return []
        return [(WORKSPACE_MOUNTPOINT, self.workspace), (AGENT_MOUNTPOINT, self.agent_dir)]

    def markers(self) -> dict[str, str]:
        return {MARKER_ID: str(self.instance_id), MARKER_DIR: str(self.root)}

    def to_host(self, visible: str) -> str:
        """A path as the machine names it -> the path on this host (for SFTP)."""
        if not visible.startswith("/"):
            visible = f"{self.visible_workspace}/{visible}"
        for mountpoint, host in self.private_mounts():
            if visible == mountpoint or visible.startswith(mountpoint + "/"):
                return str(host) + visible[len(mountpoint) :]
        return visible

    def to_visible(self, host: str) -> str:
        for mountpoint, host_dir in self.private_mounts():
            prefix = str(host_dir)
            if host == prefix or host.startswith(prefix + "/"):
                return mountpoint + host[len(prefix) :]
        return host
