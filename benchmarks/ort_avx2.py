"""A copy of the installed onnxruntime whose kernels are capped to AVX2, for benchmark rows on AVX-512 CPUs.

onnxruntime's MLAS library picks its kernels once, from CPUID, and has no setting to override that
(torch has ``ATEN_CPU_CAPABILITY``). Most users' CPUs are AVX2 without VNNI, where the uint8 x int8
kernels are not only slower but numerically different (``vpmaddubsw`` saturates pair sums in int16),
so the benchmarks need those kernels. This copies the ``onnxruntime`` package to ``OUT/onnxruntime`` and
flips two conditional jumps in MLAS's platform set-up into unconditional ones: "CPU has AVX-VNNI" and
"CPU has AVX512F and the OS saves ZMM state" are then never taken, so MLAS installs exactly what it
installs on an AVX2 + FMA CPU. Put ``OUT`` first on ``PYTHONPATH`` to use it.

It is a stand-in, not an AVX2 machine: caches, memory and clocks stay this CPU's. The byte patterns are
those of the onnxruntime pinned in ``constraints.txt``; with any other build the script refuses (each
pattern must occur exactly once) rather than guess.

    python benchmarks/ort_avx2.py /tmp/ort_avx2
    PYTHONPATH=/tmp/ort_avx2 brushwork stylize photo.jpg --model starry_night -o out.png
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

# (what the jump skips, the bytes before the short `je` (0x74, becomes `jmp` 0xeb), the bytes after its displacement)
PATCHES = (
    ("AVX-VNNI kernels (cpuid leaf 7.1 eax bit 4)", b"\x0f\xa2\xa8\x10", b""),  # cpuid; test $0x10,%al
    ("AVX-512 kernels (cpuid leaf 7 ebx bit 16, XCR0 ZMM state)", b"\x41\xf7\xc2\x00\x00\x01\x00",  # test $0x10000
     b"\x4c\x89\xc0\x48\xf7\xd0\xa8\xe0"),  # mov %r8,%rax; not %rax; test $0xe0,%al
)
PROBE = "import onnxruntime; print(onnxruntime.__file__)"


def patch(binary: bytes) -> tuple[bytes, list[str]]:
    """The library with each jump flipped; raises ValueError unless every pattern occurs exactly once."""
    out = bytearray(binary)
    done = []
    for what, before, after in PATCHES:
        hits = [m.start() for m in re.finditer(re.escape(before) + b"\x74." + re.escape(after), binary, re.S)]
        if len(hits) != 1:
            raise ValueError(f"{what}: the pattern occurs {len(hits)} times (expected once): another onnxruntime build")
        at = hits[0] + len(before)
        out[at] = 0xEB
        done.append(f"{what}: je -> jmp at file offset {at:#x}")
    return bytes(out), done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder to hold the patched onnxruntime package")
    args = ap.parse_args()
    import onnxruntime

    src = Path(onnxruntime.__file__).parent
    dst = args.out / "onnxruntime"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    libs = sorted((dst / "capi").glob("onnxruntime_pybind11_state*.so"))
    if len(libs) != 1:
        print(f"ort_avx2: expected one onnxruntime_pybind11_state*.so in {dst / 'capi'}, found {len(libs)}",
              file=sys.stderr)
        return 2
    try:
        patched, done = patch(libs[0].read_bytes())
    except ValueError as exc:
        print(f"ort_avx2: {exc} (onnxruntime {onnxruntime.__version__})", file=sys.stderr)
        return 2
    libs[0].write_bytes(patched)
    where = subprocess.run([sys.executable, "-c", PROBE], env={"PYTHONPATH": str(args.out)}, capture_output=True,
                           text=True, check=True).stdout.strip()
    if not where.startswith(str(dst)):
        print(f"ort_avx2: PYTHONPATH={args.out} still imports {where}", file=sys.stderr)
        return 2
    print(f"onnxruntime {onnxruntime.__version__} capped to AVX2 kernels in {dst}")
    for line in done:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
