"""Installing the agent over real SSH onto sim machines, and what it then reports.

The sim's machines share this host's loopback, so the agent posts to a recording server here.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from agent.config import AgentConfig
from agent.deploy import AgentDeployError, deploy_agent
from sim.sandbox.layout import MachineLayout
from sim.sandbox.processes import machine_pids
from tests.agent.helpers import eventually
from tests.agent.recording_server import RecordingServer
from tests.fixtures.sim import SimHandle
from tests.sim.helpers import connect, new_key, public, rent


class SimMachine:
    def __init__(self, instance_id: int, port: int, info: dict[str, Any]) -> None:
        self.instance_id = instance_id
        self.port = port
        self.machine_id = f"vast_{instance_id}"
        self.namespace = info["visible_workspace"] == "/workspace"
        self.layout = MachineLayout(instance_id, Path(info["machine_dir"]), self.namespace)

    def host_path(self, visible: str) -> Path:
        """A file as the machine names it, on this host."""
        return Path(self.layout.to_host(visible))

    def processes(self) -> tuple[list[int], list[int]]:
        """(agent pids, watchdog pids) among the machine's processes."""
        agents, watchdogs = [], []
        for pid in machine_pids(self.layout):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"-m" in argv and b"agent" in argv:
                agents.append(pid)
            elif argv[0] in (b"sh", b"/bin/sh") and argv[1].endswith(b"/watchdog.sh"):
                watchdogs.append(pid)
        return agents, watchdogs


async def sim_machine(sim: SimHandle, key: asyncssh.SSHKey) -> SimMachine:
    async with sim.client() as client:
        await client.post("/api/v0/ssh/", json={"ssh_key": public(key)})
        instance_id = await rent(client)
    running = await sim.wait_for_status(instance_id, "running")
    return SimMachine(instance_id, int(running["ssh_port"]), await sim.admin.instance(instance_id))


def agent_config(machine: SimMachine, server: RecordingServer, token: str) -> AgentConfig:
    return AgentConfig(
        machine_id=machine.machine_id,
        api_url=server.url,
        token=token,
        interval_seconds=0.2,
        workspace="/workspace" if machine.namespace else str(machine.layout.workspace),
    )


async def test_install_twice_leaves_one_agent_and_the_watchdog_brings_a_killed_one_back(
    sim: SimHandle, recorder: RecordingServer
) -> None:
    key = new_key()
    machine = await sim_machine(sim, key)
    async with connect(machine.port, key) as conn:
        install_dir = await deploy_agent(conn, agent_config(machine, recorder, "dma_first"))
        if machine.namespace:  # a machine of its own: the production location
            assert install_dir == "/opt/dumont-agent"
        else:
            assert install_dir.endswith("/.dumont-agent")
        await eventually(lambda: len(recorder.received) >= 2)
        assert recorder.reports[-1]["instance_id"] == machine.machine_id
        assert recorder.received[-1].authorization == "Bearer dma_first"

        # Installing again replaces the files and the config (a new token) and restarts it.
        await deploy_agent(conn, agent_config(machine, recorder, "dma_second"))
        mode = await conn.run(f"stat -c %a {install_dir}/config.json", check=True)
        assert str(mode.stdout).strip() == "600"  # it holds the token
    await eventually(lambda: recorder.received[-1].authorization == "Bearer dma_second")
    # Settled (python3 may be a launcher that forks briefly): one agent, one watchdog.
    await eventually(lambda: [len(pids) for pids in machine.processes()] == [1, 1])
    (agent,), watchdogs = machine.processes()

    os.kill(agent, signal.SIGKILL)
    seen = len(recorder.received)
    await eventually(lambda: (p := machine.processes())[0] not in ([], [agent]) and len(p[0]) == 1)
    assert machine.processes()[1] == watchdogs
    await eventually(lambda: len(recorder.received) > seen)
    assert recorder.received[-1].authorization == "Bearer dma_second"
    log = machine.host_path(f"{install_dir}/agent.log").read_text()
    assert log.count("agent started") == 3  # first install, second install, after the kill
    assert machine.host_path(f"{install_dir}/agent.err").read_text() == ""  # no crash


async def test_typing_in_an_ssh_terminal_is_activity_and_idle_sessions_and_exec_are_not(
    sim: SimHandle, recorder: RecordingServer
) -> None:
    key = new_key()
    machine = await sim_machine(sim, key)

    def latest() -> dict[str, Any]:
        return recorder.reports[-1]

    async def after_more_reports(count: int = 3) -> dict[str, Any]:
        target = len(recorder.reports) + count
        await eventually(lambda: len(recorder.reports) >= target)
        return latest()

    async with connect(machine.port, key) as conn:
        await deploy_agent(conn, agent_config(machine, recorder, "dma_token"))
        await eventually(lambda: len(recorder.reports) >= 1)
        assert (latest()["active_users"], latest()["last_activity"]) == (0, None)

        # A command without a terminal (what the control plane itself runs) is not a user.
        command = await conn.create_process("sleep 30")
        quiet = await after_more_reports()
        assert (quiet["active_users"], quiet["last_activity"]) == (0, None)
        command.close()

        shell = await conn.create_process(term_type="xterm", term_size=(80, 24))
        await eventually(lambda: latest()["active_users"] == 1)
        assert (await after_more_reports())["last_activity"] is None  # logged in, not typing

        shell.stdin.write("echo typed\n")
        await eventually(lambda: latest()["last_activity"] is not None)
        first = latest()["last_activity"]
        idle = await after_more_reports()  # the session stays open, nobody types
        assert (idle["active_users"], idle["last_activity"]) == (1, first)

        await asyncio.sleep(0.01)  # the next keystroke is at a later millisecond
        shell.stdin.write("echo again\n")
        await eventually(lambda: latest()["last_activity"] != first)
        second = latest()["last_activity"]
        assert second > first  # ISO-8601 UTC with a Z compares as text

        shell.stdin.write("exit\n")  # typing too
        await shell.wait()
        await eventually(lambda: latest()["active_users"] == 0)
        last = latest()["last_activity"]
        assert last >= second
        assert (await after_more_reports())["last_activity"] == last  # kept after logout


async def test_an_agent_that_cannot_start_fails_the_install_with_its_words_and_leaves_nothing(
    sim: SimHandle, recorder: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    machine = await sim_machine(sim, key)
    config = agent_config(machine, recorder, "dma_broken")
    monkeypatch.setattr(AgentConfig, "to_json", lambda self: '{"machine_id": ')  # cut short
    async with connect(machine.port, key) as conn:
        with pytest.raises(AgentDeployError) as failed:
            await deploy_agent(conn, config)
    assert "did not start" in str(failed.value) and "is not JSON" in str(failed.value)
    # Nothing is left restarting a broken agent every 2 s.
    assert machine.processes() == ([], [])
