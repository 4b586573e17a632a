"""GPU readings: NVML on real machines, the sim's JSON file on sim machines, else unknown.

An unreadable GPU is reported as unknown (null), never as 0: the control plane counts unknown as
busy, so a broken driver can never make a working machine look idle and get it hibernated.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

SIM_GPU_FILE_ENV = "DUMONT_SIM_GPU_FILE"
_MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str | None
    utilization_percent: float
    memory_used_mb: int
    memory_total_mb: int
    temperature_celsius: int | None = None
    power_watts: int | None = None


@dataclass(frozen=True)
class GpuSample:
    gpus: list[GpuReading] | None  # None: unknown; gpu_error says why
    error: str | None = None
    process_count: int | None = None

    @classmethod
    def unknown(cls, error: str) -> GpuSample:
        return cls(gpus=None, error=error)


class GpuSource(Protocol):
    def sample(self) -> GpuSample: ...

    def close(self) -> None: ...


class UnknownSource:
    """No way to read the GPU here: every sample says so."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def sample(self) -> GpuSample:
        return GpuSample.unknown(self._reason)

    def close(self) -> None:
        pass


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


class NvmlSource:
    """Reads every GPU through NVML (the `pynvml` module of nvidia-ml-py, or a stand-in).

    NVML is initialised once and kept; it reads the driver's counters and opens no CUDA context,
    so the agent takes no GPU memory. A failed init is retried on the next sample (the driver
    may come up later). Utilisation or memory unreadable → the whole sample is unknown; an
    unsupported temperature, power or process list → only that field is unknown.
    """

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._initialised = False

    def _init(self) -> None:
        if not self._initialised:
            self._nvml.nvmlInit()
            self._initialised = True

    def sample(self) -> GpuSample:
        # Any exception, not only NVMLError: an old or broken binding must not stop the agent.
        try:
            self._init()
            count = int(self._nvml.nvmlDeviceGetCount())
            handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            gpus = [self._read(index, handle) for index, handle in enumerate(handles)]
        except Exception as exc:
            return GpuSample.unknown(f"NVML: {_describe(exc)}")
        return GpuSample(gpus=gpus, process_count=self._process_count(handles))

    def _read(self, index: int, handle: Any) -> GpuReading:
        nvml = self._nvml
        utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        return GpuReading(
            index=index,
            name=self._optional(lambda: _text(nvml.nvmlDeviceGetName(handle))),
            utilization_percent=float(utilization.gpu),
            memory_used_mb=int(memory.used) // _MIB,
            memory_total_mb=int(memory.total) // _MIB,
            temperature_celsius=self._optional(
                lambda: int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            ),
            power_watts=self._optional(
                lambda: round(int(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000)
            ),
        )

    def _process_count(self, handles: list[Any]) -> int | None:
        pids: set[int] = set()
        for handle in handles:
            processes = self._optional(
                lambda handle=handle: self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            )
            if processes is None:
                return None
            pids.update(int(process.pid) for process in processes)
        return len(pids)

    @staticmethod
    def _optional(read: Any) -> Any:
        try:
            return read()
        except Exception:
            return None

    def close(self) -> None:
        if self._initialised:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._initialised = False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SimFileSource:
    """The GPU load a sim machine's host publishes as JSON: {"gpus": [{...}, ...]}."""

    def __init__(self, path: str) -> None:
        self._path = path

    def sample(self) -> GpuSample:
        try:
            with open(self._path, encoding="utf-8") as handle:
                data = json.load(handle)
            gpus = [
                GpuReading(
                    index=int(gpu.get("index", position)),
                    name=gpu.get("name"),
                    utilization_percent=float(gpu["utilization_percent"]),
                    memory_used_mb=int(gpu["memory_used_mb"]),
                    memory_total_mb=int(gpu["memory_total_mb"]),
                    temperature_celsius=gpu.get("temperature_celsius"),
                    power_watts=gpu.get("power_watts"),
                )
                for position, gpu in enumerate(data["gpus"])
            ]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return GpuSample.unknown(f"sim GPU file: {_describe(exc)}")
        return GpuSample(gpus=gpus, process_count=data.get("process_count"))

    def close(self) -> None:
        pass


def _import_pynvml() -> Any:
    try:
        # The `pynvml` wrapper package warns that nvidia-ml-py (same module) is preferred.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pynvml
    except Exception:  # absent, or a binding that fails on import
        return None
    return pynvml


_IMPORT_PYNVML: Any = object()


def choose_source(environ: dict[str, str] | None = None, nvml: Any = _IMPORT_PYNVML) -> GpuSource:
    """Sim machines (they have no GPU) read their file; others NVML when present; else unknown.

    `nvml` is the NVML module to use; the default imports pynvml.
    """
    environ = dict(os.environ) if environ is None else environ
    sim_file = environ.get(SIM_GPU_FILE_ENV)
    if sim_file:
        return SimFileSource(sim_file)
    module = _import_pynvml() if nvml is _IMPORT_PYNVML else nvml
    if module is None:
        return UnknownSource("pynvml is not installed")
    return NvmlSource(module)


def summary(gpus: list[GpuReading] | None) -> dict[str, Any] | None:
    """The report's `gpu_metrics`: mean utilisation, summed memory and power, hottest GPU."""
    if not gpus:
        return None
    temperatures = [g.temperature_celsius for g in gpus if g.temperature_celsius is not None]
    powers = [g.power_watts for g in gpus if g.power_watts is not None]
    return {
        "utilization_percent": round(sum(g.utilization_percent for g in gpus) / len(gpus), 1),
        "memory_used_mb": sum(g.memory_used_mb for g in gpus),
        "memory_total_mb": sum(g.memory_total_mb for g in gpus),
        "temperature_celsius": max(temperatures) if temperatures else None,
        "power_watts": sum(powers) if len(powers) == len(gpus) else None,
    }
