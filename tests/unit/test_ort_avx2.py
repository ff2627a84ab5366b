"""The benchmark helper that caps onnxruntime to AVX2 kernels flips exactly the jumps it names, or refuses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("ort_avx2", Path(__file__).parents[2] / "benchmarks" / "ort_avx2.py")
ort_avx2 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ort_avx2)


def _site(before: bytes, after: bytes, displacement: int) -> bytes:
    return before + b"\x74" + bytes([displacement]) + after


def test_each_jump_is_flipped_once_and_nothing_else_changes() -> None:
    (_, vnni, a1), (_, avx512, a2) = ort_avx2.PATCHES
    lib = b"\x90" * 64 + _site(vnni, a1, 0x38) + b"\xc3" * 17 + _site(avx512, a2, 0x0E) + b"\x90" * 9
    out, done = ort_avx2.patch(lib)
    assert len(out) == len(lib) and len(done) == 2
    changed = [i for i, (x, y) in enumerate(zip(lib, out)) if x != y]
    assert changed == [64 + len(vnni), 64 + len(vnni) + 2 + 17 + len(avx512)]
    assert all(lib[i] == 0x74 and out[i] == 0xEB for i in changed)


def test_another_build_is_refused() -> None:
    (_, vnni, a1), (_, avx512, a2) = ort_avx2.PATCHES
    with pytest.raises(ValueError, match="0 times"):
        ort_avx2.patch(_site(vnni, a1, 1))
    with pytest.raises(ValueError, match="2 times"):
        ort_avx2.patch(_site(vnni, a1, 1) * 2 + _site(avx512, a2, 2))
