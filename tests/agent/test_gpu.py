"""GPU readings: NVML through a stand-in for nvidia-ml-py's `pynvml` (no GPU here), the sim's
file, and unknown — which is null, never 0."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import gpu
from agent.gpu import NvmlSource, SimFileSource, UnknownSource, choose_source

MIB = 1024 * 1024


class NVMLError(Exception):
    pass


@dataclass
class FakeDevice:
    name: str
    utilization: int
    used_mib: int
    total_mib: int
    temperature: int | None = 60
    power_mw: int | None = 250_000
    pids: list[int] | None = field(default_factory=list)


@dataclass
class _Utilization:
    gpu: int
    memory: int = 0


@dataclass
class _Memory:
    total: int
    free: int
    used: int


@dataclass
class _Process:
    pid: int
    usedGpuMemory: int = 0  # noqa: N815 - nvidia-ml-py's name


class FakeNvml:
    """The slice of nvidia-ml-py's pynvml API the agent uses, with the same names and units."""

    NVML_TEMPERATURE_GPU = 0
    NVMLError = NVMLError

    def __init__(self, devices: list[FakeDevice], fail_init: bool = False) -> None:
        self.devices = devices
        self.fail_init = fail_init
        self.fail_utilization = False
        self.init_calls = 0
        self.shutdown_calls = 0

    def nvmlInit(self) -> None:  # noqa: N802
        self.init_calls += 1
        if self.fail_init:
            raise NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shutdown_calls += 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeDevice:  # noqa: N802
        return self.devices[index]

    def nvmlDeviceGetName(self, handle: FakeDevice) -> bytes:  # noqa: N802
        return handle.name.encode()  # older bindings return bytes

    def nvmlDeviceGetUtilizationRates(self, handle: FakeDevice) -> _Utilization:  # noqa: N802
        if self.fail_utilization:
            raise NVMLError("GPU is lost")
        return _Utilization(gpu=handle.utilization)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeDevice) -> _Memory:  # noqa: N802
        used, total = handle.used_mib * MIB, handle.total_mib * MIB
        return _Memory(total=total, free=total - used, used=used)

    def nvmlDeviceGetTemperature(self, handle: FakeDevice, sensor: int) -> int:  # noqa: N802
        assert sensor == self.NVML_TEMPERATURE_GPU
        if handle.temperature is None:
            raise NVMLError("Not Supported")
        return handle.temperature

    def nvmlDeviceGetPowerUsage(self, handle: FakeDevice) -> int:  # noqa: N802
        if handle.power_mw is None:
            raise NVMLError("Not Supported")
        return handle.power_mw

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeDevice) -> list[_Process]:  # noqa: N802
        if handle.pids is None:
            raise NVMLError("Not Supported")
        return [_Process(pid) for pid in handle.pids]


def two_gpus() -> list[FakeDevice]:
    return [
        FakeDevice("NVIDIA GeForce RTX 4090", 90, 18432, 24564, 72, 320_400, [100, 200]),
        FakeDevice("NVIDIA GeForce RTX 4090", 10, 1024, 24564, 55, 80_000, [200]),
    ]


def test_nvml_reads_every_gpu_in_the_reports_units() -> None:
    source = NvmlSource(FakeNvml(two_gpus()))
    sample = source.sample()

    assert sample.error is None
    assert sample.gpus is not None
    first, second = sample.gpus
    assert (first.index, first.name, first.utilization_percent) == (
        0,
        "NVIDIA GeForce RTX 4090",
        90.0,
    )
    assert (first.memory_used_mb, first.memory_total_mb) == (18432, 24564)
    assert (first.temperature_celsius, first.power_watts) == (72, 320)
    assert second.index == 1 and second.utilization_percent == 10.0
    assert sample.process_count == 2  # pid 200 uses both GPUs: counted once
    assert gpu.summary(sample.gpus) == {
        "utilization_percent": 50.0,
        "memory_used_mb": 19456,
        "memory_total_mb": 49128,
        "temperature_celsius": 72,
        "power_watts": 400,
    }


def test_nvml_is_initialised_once_and_shut_down_on_close() -> None:
    nvml = FakeNvml(two_gpus())
    source = NvmlSource(nvml)
    for _ in range(3):
        source.sample()
    source.close()
    assert (nvml.init_calls, nvml.shutdown_calls) == (1, 1)


def test_nvml_errors_make_the_gpu_unknown_never_zero() -> None:
    nvml = FakeNvml(two_gpus(), fail_init=True)
    source = NvmlSource(nvml)
    broken = source.sample()
    assert broken.gpus is None and broken.process_count is None
    assert broken.error is not None and "Driver Not Loaded" in broken.error
    assert gpu.summary(broken.gpus) is None

    nvml.fail_init = False  # the driver came up: init is tried again
    assert source.sample().gpus is not None

    nvml.fail_utilization = True
    lost = source.sample()
    assert lost.gpus is None and lost.error is not None and "GPU is lost" in lost.error


def test_unsupported_optional_readings_are_unknown_alone() -> None:
    device = FakeDevice("Tesla T4", 33, 100, 15360, temperature=None, power_mw=None, pids=None)
    sample = NvmlSource(FakeNvml([device])).sample()
    assert sample.gpus is not None
    (reading,) = sample.gpus
    assert reading.utilization_percent == 33.0
    assert reading.temperature_celsius is None and reading.power_watts is None
    assert sample.process_count is None
    metrics = gpu.summary(sample.gpus)
    assert metrics is not None
    assert metrics["temperature_celsius"] is None and metrics["power_watts"] is None


def test_a_binding_that_misbehaves_is_unknown_not_a_crash() -> None:
    class Broken(FakeNvml):
        def nvmlDeviceGetCount(self) -> int:  # noqa: N802
            raise AttributeError("module 'pynvml' has no attribute 'nvmlDeviceGetCount'")

    sample = NvmlSource(Broken([])).sample()
    assert sample.gpus is None and sample.error is not None


def _sim_file(path: Path, payload: Any) -> str:
    path.write_text(json.dumps(payload))
    return str(path)


def test_sim_file_source_reads_the_load_the_sim_set(tmp_path: Path) -> None:
    path = _sim_file(
        tmp_path / "gpu.json",
        {
            "gpus": [
                {
                    "index": 0,
                    "name": "RTX 4090",
                    "utilization_percent": 42.5,
                    "memory_used_mb": 1000,
                    "memory_total_mb": 24564,
                }
            ],
            "updated_at": 1.0,
        },
    )
    sample = SimFileSource(path).sample()
    assert sample.gpus is not None and sample.error is None
    assert sample.gpus[0].utilization_percent == 42.5
    assert sample.gpus[0].temperature_celsius is None  # the sim does not say: unknown


def test_a_missing_or_broken_sim_file_is_unknown(tmp_path: Path) -> None:
    missing = SimFileSource(str(tmp_path / "absent.json")).sample()
    assert missing.gpus is None and missing.error is not None
    garbled = SimFileSource(_sim_file(tmp_path / "gpu.json", {"gpus": [{"index": 0}]})).sample()
    assert garbled.gpus is None and garbled.error is not None


def test_source_choice(tmp_path: Path) -> None:
    sim_env = {"DUMONT_SIM_GPU_FILE": str(tmp_path / "gpu.json")}
    # A sim machine has no GPU, whatever bindings are installed.
    assert isinstance(choose_source(sim_env, nvml=FakeNvml([])), SimFileSource)
    assert isinstance(choose_source({}, nvml=FakeNvml([])), NvmlSource)
    without = choose_source({}, nvml=None)
    assert isinstance(without, UnknownSource)
    sample = without.sample()
    assert sample.gpus is None and sample.error == "pynvml is not installed"
