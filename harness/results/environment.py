"""Where a number was measured: the machine, its limits, the software, the container, the commit.

harness.host.envinfo probes these (torch and onnxruntime imported there, never here); the report
reads them by attribute, so a renamed key is a type error, not a silently empty cell.
Every probe may fail, so almost every field may be None.
"""

from __future__ import annotations

from pydantic import Field

from resnest_bench.harness.results.record import Record


class PythonInfo(Record):
    version: str
    implementation: str | None = None
    executable: str | None = None


class PlatformInfo(Record):
    system: str | None = None
    release: str | None = None
    machine: str | None = None
    platform: str | None = None


class CpuInfo(Record):
    """usable_cpus: affinity capped by the cgroup CPU quota (what the process may really use)."""

    model: str | None = None
    isa_flags: list[str] = Field(default_factory=list)
    vendor: str | None = None  # /proc/cpuinfo vendor_id: AuthenticAMD, GenuineIntel
    family: int | None = None  # cpu family: 25 = AMD Zen 3/4, 26 = Zen 5
    mhz: float | None = None  # the clock /proc/cpuinfo reports (boost may run faster)
    logical_cores: int | None = None
    affinity_cores: int | None = None
    usable_cpus: int | None = None


class MemoryInfo(Record):
    host_total_bytes: int | None = None


class CgroupLimits(Record):
    """Limits imposed by the control group; None means unlimited or unknown."""

    cpu_quota_cores: float | None = None
    memory_bytes: int | None = None
    version: int | None = None


class Versions(Record):
    torch: str | None = None
    numpy: str | None = None
    onnx: str | None = None
    onnxruntime: str | None = None
    onnxruntime_providers: list[str] | None = None


class GpuInfo(Record):
    """The GPU a run used; `error` says why the probe failed (then the rest is None)."""

    index: int | None = None
    name: str | None = None
    compute_capability: str | None = None
    total_memory_bytes: int | None = None
    count: int | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    cudnn_version: int | None = None
    error: str | None = None


class ContainerInfo(Record):
    image: str | None = None
    tag: str | None = None
    in_container: bool = False


class Environment(Record):
    """The fingerprint of one run (harness.host.envinfo.fingerprint())."""

    python: PythonInfo
    platform: PlatformInfo = PlatformInfo()
    cpu: CpuInfo
    memory: MemoryInfo = MemoryInfo()
    cgroup: CgroupLimits = CgroupLimits()
    versions: Versions
    device: str = "cpu"
    gpu: GpuInfo | None = None
    container: ContainerInfo = ContainerInfo()
    git_commit: str | None = None
    argv: list[str] = Field(default_factory=list)
