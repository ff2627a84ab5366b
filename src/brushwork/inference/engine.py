"""Which engine runs a one-pass model when the user does not say (``--engine auto``), decided from
the CPU without importing torch.

Measured (benchmarks/results/runtime.md): a single command is fastest on onnxruntime INT8 on every
CPU kind, because it never pays torch's ~2 s import; on CPUs with native bf16 (AVX-512 BF16, AMX)
torch's bf16 pass is ~15% faster per image than INT8, which wins once many images share one process
(batch, video, the server). Elsewhere (AVX2, ARM) INT8 wins per image too.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
from pathlib import Path
from typing import Any

ENGINES = ("auto", "torch", "onnx", "int8")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_kind() -> dict[str, Any]:
    """What a benchmark row names: CPU model, capability (AMX / AVX-512 / AVX2 / NEON), native bf16, cores."""
    flags = cpu_flags()
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    if "amx_tile" in flags:
        capability = "AMX"
    elif "avx512f" in flags:
        capability = "AVX-512"
    elif "avx2" in flags:
        capability = "AVX2"
    elif platform.machine().lower() in ("arm64", "aarch64"):
        capability = "NEON"
    else:
        capability = platform.machine()
    return {"cpu": model, "capability": capability, "bf16": native_bf16(), "cores": os.cpu_count()}


def native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX-512 BF16 or AMX), as oneDNN needs for fast bf16."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def resolve_engine(engine: str, int8_file: Path | None, device: str = "cpu", many: bool = False) -> str:
    """``auto`` -> the fastest engine for this job: INT8 on onnxruntime where the model ships one and
    onnxruntime is installed, unless a long job (``many`` images) runs on a native-bf16 CPU with torch;
    torch otherwise (and always off the CPU)."""
    if engine != "auto":
        return engine
    if str(device) != "cpu":
        return "torch"
    has_int8 = int8_file is not None and Path(int8_file).is_file()
    if has_int8 and importlib.util.find_spec("onnxruntime") is not None:
        if many and native_bf16() and importlib.util.find_spec("torch") is not None:
            return "torch"
        return "int8"
    return "torch"
