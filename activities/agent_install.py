"""Install (or re-install) the agent on a machine over SSH with Dumont's key.

Safe to run again: every install issues a fresh agent token (revoking the previous one) and the
agent's own install replaces its files and restarts it. Nothing is done when the provider does
not report the instance running, and SSH is reached before a token is issued, so a machine
that cannot be reached keeps its working agent and token.
"""

from __future__ import annotations

import asyncio

import asyncssh
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import provider_errors
from activities.heartbeat import heartbeating
from activities.provider import ProviderLookup
from agent.config import AgentConfig
from agent.deploy import AgentDeployError, deploy_agent
from core.agent_tokens import issue_agent_token
from core.contracts.activities import ActivityName
from core.contracts.agent import InstallAgentInput, InstallAgentResult
from core.contracts.errors import ErrorType
from core.contracts.states import InstanceStatus
from core.db import session_scope
from core.models import Machine
from core.ssh import SshIdentity


class AgentInstallActivities:
    def __init__(
        self,
        providers: ProviderLookup,
        identity: SshIdentity,
        engine: Engine,
        *,
        api_url: str,
        interval_seconds: int,
        workspace: str = "/workspace",
        connect_timeout_seconds: float = 20.0,
    ) -> None:
        self._providers = providers
        self._key = identity.load()
        self._engine = engine
        self._api_url = api_url
        self._interval = interval_seconds
        self._workspace = workspace
        self._connect_timeout = connect_timeout_seconds

    @activity.defn(name=ActivityName.INSTALL_AGENT)
    async def install_agent(self, input: InstallAgentInput) -> InstallAgentResult:
        info = input.instance
        with provider_errors():
            provider = self._providers.get(info.provider)
            current = await provider.get_instance(info.instance_id)
        if current is None or current.status is InstanceStatus.GONE:
            raise ApplicationError(
                f"instance {info.instance_id} no longer exists at {info.provider}",
                type=ErrorType.INSTANCE_GONE,
                non_retryable=True,
            )
        if current.status is not InstanceStatus.RUNNING:
            shown = current.raw_status or current.status.value
            return InstallAgentResult(installed=False, detail=f"provider reports {shown}")
        host = current.ssh_host or info.ssh_host
        port = current.ssh_port or info.ssh_port
        user = current.ssh_user or info.ssh_user  # the provider's word is the newer one
        if not host or not port:
            return InstallAgentResult(installed=False, detail="the instance has no SSH address")
        async with heartbeating():
            try:
                async with asyncssh.connect(
                    host,
                    port,
                    username=user,
                    client_keys=[self._key],
                    known_hosts=None,  # a fresh machine has a fresh host key; the provider vouches
                    agent_path=None,
                    config=None,
                    connect_timeout=self._connect_timeout,
                ) as conn:
                    token = await asyncio.to_thread(self._new_token, input.machine_id)
                    config = AgentConfig(
                        machine_id=input.machine_id,
                        api_url=self._api_url,
                        token=token,
                        interval_seconds=self._interval,
                        workspace=self._workspace,
                    )
                    install_dir = await deploy_agent(conn, config)
            except AgentDeployError as exc:
                raise ApplicationError(str(exc), type=ErrorType.AGENT_DEPLOY_FAILED) from None
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                raise ApplicationError(
                    f"SSH to {user}@{host}:{port} failed: {type(exc).__name__}: {exc}".rstrip(": "),
                    type=ErrorType.MACHINE_UNREACHABLE,
                ) from None
        activity.logger.info("agent installed on %s in %s", input.machine_id, install_dir)
        return InstallAgentResult(installed=True, detail=f"agent running from {install_dir}")

    def _new_token(self, machine_id: str) -> str:
        """A fresh token; the machine's agent state resets to "not told online", so the new
        agent's first report reaches the workflow as a transition."""
        with session_scope(self._engine) as session:
            token = issue_agent_token(session, machine_id)
            session.execute(
                update(Machine)
                .where(col(Machine.id) == machine_id)
                .values(agent_online=False, agent_busy=None)
            )
        return token
