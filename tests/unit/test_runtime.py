"""Device, precision and memory decisions."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch

from brushwork import runtime
from brushwork.errors import ConfigError, ResourceError
from brushwork.runtime import (
    autocast,
    available_memory_bytes,
    check_memory,
    inference_threads,
    resolve_device,
    resolve_precision,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", [None, "cpu", torch.device("cpu")])
def test_resolve_device_cpu(name) -> None:
    assert resolve_device(name) == CPU


def test_resolve_device_cuda_unavailable() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError) as info:
        resolve_device("cuda")
    msg = str(info.value)
    assert "\n" not in msg and "cuda" in msg.lower()
    with pytest.raises(ConfigError):
        resolve_device("cuda:0")


def test_resolve_device_cuda_when_forced_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError):
        resolve_device("cuda")


def test_resolve_device_mps_unavailable() -> None:
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        pytest.skip("this machine has an Apple GPU (MPS)")
    with pytest.raises(ConfigError):
        resolve_device("mps")


@pytest.mark.parametrize("bad", ["not-a-device", "gpu", "cuda:x"])
def test_resolve_device_bad_name_is_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device(bad)
    msg = str(info.value)
    assert "\n" not in msg and bad in msg


@pytest.mark.parametrize(("name", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_resolve_precision_explicit(name: str, dtype: torch.dtype) -> None:
    assert resolve_precision(name, CPU) == dtype


def test_resolve_precision_auto_cpu_follows_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", CPU) == torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", CPU) == torch.float32


def test_resolve_precision_auto_here() -> None:
    assert resolve_precision("auto", CPU) in (torch.float32, torch.bfloat16)
    assert isinstance(runtime.cpu_has_fast_bf16(), bool)


def test_resolve_precision_auto_other_device_is_fp32() -> None:
    assert resolve_precision("auto", torch.device("meta")) == torch.float32


@pytest.mark.parametrize("bad", ["fp16", "FP32", "", "float32"])
def test_resolve_precision_unknown(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_precision(bad, CPU)
    assert "\n" not in str(info.value)


def test_autocast_fp32_is_a_no_op() -> None:
    with autocast(CPU, torch.float32):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_autocast_bf16_on_cpu() -> None:
    with autocast(CPU, torch.bfloat16):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.bfloat16


def test_available_memory_is_positive() -> None:
    assert available_memory_bytes(CPU) > 0


def test_check_memory_huge_estimate_is_resource_error() -> None:
    with pytest.raises(ResourceError) as info:
        check_memory(1 << 60, CPU, "stylizing a 100000x100000 image")
    msg = str(info.value)
    assert "\n" not in msg
    assert "stylizing a 100000x100000 image" in msg and "GiB" in msg and "--size" in msg


def test_check_memory_with_explicit_limit() -> None:
    check_memory(100, CPU, "tiny job", limit=1000)  # fits: no error
    with pytest.raises(ResourceError) as info:
        check_memory(3 << 30, CPU, "big job", limit=1 << 30)
    assert "3.0 GiB" in str(info.value) and "1.0 GiB" in str(info.value)


def test_check_memory_small_estimate_passes() -> None:
    check_memory(1024, CPU, "a small job")


def test_inference_threads_restores() -> None:
    before = torch.get_num_threads()
    with inference_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with inference_threads(None):
        assert torch.get_num_threads() == before



_FAULTS = """
import resource, sys, torch
import torch.nn.functional as F
from brushwork.runtime import reuse_freed_memory
if sys.argv[1] == "1":
    assert reuse_freed_memory()
x = torch.rand(1, 16, 1024, 1024)  # a slim net's full-size activation: 64 MiB
faults = []
for _ in range(10):  # a pass: new 64 MiB maps, freed at the end
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = F.relu(F.pad(x, (4, 4, 4, 4), mode="reflect") - 0.5)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del y
print(sum(faults[-3:]))  # the steady state, once the heap has settled
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_reuse_freed_memory_cuts_page_faults_on_repeated_passes() -> None:
    """By default every big buffer is a fresh mmap, faulted in page by page on every pass; with the
    setting, once the heap has settled, the freed pages are reused (this made a 1024 px CPU pass 1.5x faster)."""
    def faults(setting: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FAULTS, setting], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    default = faults("0")
    assert default > 3 * 30000  # ~16k 4 KiB pages per map, every pass
    assert faults("1") < default / 4  # at most one map of the ~9 a default run faults in
