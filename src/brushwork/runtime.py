"""Device, precision and memory decisions, made explicitly and in one place.

Library code never picks a device silently: callers pass ``device``; "auto"
precision means bf16 autocast where the hardware runs it fast (AVX-512 BF16 /
AMX CPUs, Ampere+ GPUs) and float32 elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Iterator

import torch

from brushwork.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A ``torch.device`` from a name; refuses CUDA/MPS where it is not available."""
    try:
        dev = torch.device(device or "cpu")
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device '{device}' (use cpu, cuda, cuda:N or mps)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but CUDA is not available on this machine (use --device cpu)")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was asked for but MPS is not available on this machine")
    return dev


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN runs bf16 convolutions natively (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the build
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The autocast dtype for a precision name on a device (float32 means no autocast)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    return torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or a no-op for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def available_memory_bytes(device: torch.device) -> int:
    """Memory a job may use: free GPU memory, or the machine's available RAM."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    from brushwork.inference.arrays import available_ram

    return available_ram()


def check_memory(estimate: int, device: torch.device, what: str, limit: int | None = None) -> None:
    """Refuse clearly, before any work, when ``estimate`` bytes will not fit."""
    from brushwork.inference.arrays import check_budget

    check_budget(estimate, what, limit, available_memory_bytes(device), device.type)


@contextlib.contextmanager
def inference_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (None keeps the current setting)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: free heap memory above this is given back to the OS (glibc's default is 128 KiB)
KEEP_FREED_BYTES = 1 << 30


@functools.cache
def reuse_freed_memory() -> bool:
    """Let glibc's malloc keep freed large buffers for the next allocation; True if it was set.

    A CPU pass at 1024 px allocates and frees tens of feature maps of 16-70 MB. By default
    glibc serves each from a fresh ``mmap`` and unmaps it on free, so every pass pays the
    kernel to zero and fault in ~1 GB of new pages: 40% of a slim net's time at 1024 px.
    Serving them from the heap and keeping up to :data:`KEEP_FREED_BYTES` of freed memory
    reuses the same pages pass after pass (the effect of ``MALLOC_MMAP_MAX_=0``). Process-wide
    and harmless elsewhere; a no-op off glibc (macOS, Windows, musl), and once per process.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
