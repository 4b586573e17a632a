"""The agent's loop: sample, post, sleep the rest of the interval; SIGTERM ends it cleanly.

python3 -m agent --config /opt/dumont-agent/config.json [--log-file agent.log]
python3 -m agent --once      # print one report as JSON and exit (no config needed)
python3 -m agent --config config.json --check   # config readable? which GPU source?
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from agent import gpu, ssh_activity
from agent.client import Uploader
from agent.config import AgentConfig, ConfigError
from agent.report import build_report
from agent.sync import SyncLoop
from agent.sync_config import agent_dir_of
from agent.sync_status import report_block
from agent.system import SystemSample, SystemSampler

log = logging.getLogger("dumont.agent")
T = TypeVar("T")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Sampler:
    """Every reading of one report; a reader that fails gives an unknown value, never a crash."""

    def __init__(
        self,
        config: AgentConfig,
        gpu_source: gpu.GpuSource,
        system: SystemSampler,
        ssh: ssh_activity.SshActivitySource,
        clock: Callable[[], datetime] = _utc_now,
        agent_dir: str | None = None,
    ) -> None:
        self._config = config
        self._gpu = gpu_source
        self._system = system
        self._ssh = ssh
        self._clock = clock
        self._hostname = socket.gethostname()
        self._agent_dir = agent_dir  # where sync.json is looked for (None: no sync)

    @classmethod
    def for_this_machine(cls, config: AgentConfig, agent_dir: str | None = None) -> Sampler:
        return cls(
            config,
            gpu.choose_source(),
            SystemSampler(config.workspace),
            ssh_activity.choose_source(),
            agent_dir=agent_dir,
        )

    def _sync(self) -> dict[str, Any] | None:
        if self._agent_dir is None:
            return None
        return _guard("the sync status", lambda: report_block(str(self._agent_dir)), None)

    def report(self) -> dict[str, Any]:
        return build_report(
            self._config,
            self._clock(),
            _guard("GPU", self._gpu.sample, gpu.GpuSample.unknown("the GPU reader failed")),
            _guard("system", self._system.sample, SystemSample()),
            _guard("SSH activity", self._ssh.sample, ssh_activity.SshActivity()),
            hostname=self._hostname,
            sync=self._sync(),
        )

    def close(self) -> None:
        self._gpu.close()


def _guard(what: str, read: Callable[[], T], unknown: T) -> T:
    try:
        return read()
    except Exception:
        log.exception("reading %s failed; reported as unknown", what)
        return unknown


class StopSignal:
    """Set by SIGTERM/SIGINT; `sleep` returns early when it is."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self.stopping = False

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.set()

    def set(self) -> None:
        self.stopping = True
        try:
            os.write(self._write, b"x")
        except OSError:
            pass  # the pipe is full: a wake-up is already waiting

    def sleep(self, seconds: float) -> None:
        if not self.stopping and seconds > 0:
            select.select([self._read], [], [], seconds)


def run(
    config: AgentConfig,
    stop: StopSignal,
    sampler: Sampler | None = None,
    uploader: Uploader | None = None,
    agent_dir: str | None = None,
) -> None:
    """`agent_dir`: the directory of config.json, where the sync file is looked for; the
    sync runs in its own thread (agent.sync) and each report carries its status."""
    sampler = sampler or Sampler.for_this_machine(config, agent_dir)
    uploader = uploader or Uploader(config, max_buffered=config.max_buffered_reports)
    interval = float(config.interval_seconds)
    log.info("agent started for %s, every %ss to %s", config.machine_id, interval, config.api_url)
    sync = None
    if agent_dir is not None:
        sync = SyncLoop(agent_dir, idle_poll_seconds=min(interval, 5.0))
        sync.start()
    next_tick = time.monotonic()
    try:
        while not stop.stopping:
            try:
                uploader.add(sampler.report())
                uploader.flush()
            except Exception:
                log.exception("sampling or posting failed; carrying on")
            # Keep the cadence; after a long stall (a hung post) start again from now.
            next_tick = max(next_tick + interval, time.monotonic())
            stop.sleep(next_tick - time.monotonic())
    finally:
        if sync is not None:
            sync.stop()
        sampler.close()
        log.info("agent stopped (%d report(s) not sent)", uploader.pending)


def _once_config() -> AgentConfig:
    workspace = os.environ.get("DUMONT_WORKSPACE") or (
        "/workspace" if os.path.isdir("/workspace") else os.getcwd()
    )
    return AgentConfig(
        machine_id=socket.gethostname(), api_url="http://unset", token="unset", workspace=workspace
    )


def _print_once(config: AgentConfig, agent_dir: str | None = None) -> None:
    sampler = Sampler.for_this_machine(config, agent_dir)
    time.sleep(0.5)  # CPU and network are rates: give them an interval to measure
    try:
        print(json.dumps(sampler.report(), indent=2))
    finally:
        sampler.close()


def _setup_logging(log_file: str | None) -> None:
    handler: logging.Handler
    if log_file:
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=1_000_000, backupCount=2, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m agent", description="Dumont machine agent")
    parser.add_argument("--config", help="config.json written by the control plane")
    parser.add_argument("--once", action="store_true", help="print one report as JSON and exit")
    parser.add_argument("--log-file", help="log here (rotated) instead of stderr")
    parser.add_argument(
        "--check", action="store_true", help="read the config, say which GPU source, exit"
    )
    parser.add_argument(
        "--ready-file", help="write this process's pid here once the config is read"
    )
    args = parser.parse_args(argv)
    _setup_logging(args.log_file)
    try:
        if args.once:
            if args.config:
                _print_once(AgentConfig.load(args.config), agent_dir_of(args.config))
            else:
                _print_once(_once_config())
            return 0
        if not args.config:
            parser.error("--config is required (or --once)")
        config = AgentConfig.load(args.config)
    except (OSError, ConfigError) as exc:
        log.error("%s", exc)
        return 2
    if args.check:
        source = gpu.choose_source()
        source.close()
        print(f"ok: python {sys.version.split()[0]}, GPU source {type(source).__name__}")
        return 0
    stop = StopSignal()
    stop.install()
    if args.ready_file:
        _say_ready(args.ready_file)
    run(config, stop, agent_dir=agent_dir_of(args.config))
    return 0


def _say_ready(path: str) -> None:
    """The installer waits for this: the config is read and the loop about to start."""
    partial = f"{path}.{os.getpid()}"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(str(os.getpid()))
    os.replace(partial, path)
