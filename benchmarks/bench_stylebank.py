#!/usr/bin/env python
"""StyleBank: time per training step, whole net (the paper's T+1 schedule) against incremental (one new bank).

Usage (from the repository root; about a minute at the defaults on a 2-core CPU)::

    PYTHONPATH=src python benchmarks/bench_stylebank.py --crop 256 --batch 4 --steps 9

1. **Trainer steps.** ``train_stylebank`` runs ``--steps`` steps on two paintings, then
   ``add_stylebank_style`` adds a third to the result for as many steps. Each step's time
   comes from the run's ``log.jsonl`` (logged every step); the first step of each run is
   warm-up and dropped; medians are reported for full stylizing steps, identity steps and
   incremental steps. These include the VGG19 loss, the same in both.
2. **Net alone.** Forward + backward of the StyleBank net only (a dummy loss, no VGG), with
   every parameter trainable against only a new bank trainable (the auto-encoder frozen, so
   the encoder builds no graph): the part of a step that incremental training saves on.

Photos come from ``../shared/data/train/content`` and paintings from ``../shared/data/style``
when present, else generated noise images. Numbers are printed (and written with ``--json``);
nothing here runs in the test suite.

One run (2-core AVX-512 CPU shared with another training job, ``--threads 1``, 4 x 256 px,
widths 32/64/128, medians of 5-6 steps; seconds per step)::

    precision  full stylizing  identity  incremental  |  net fwd+bwd: full  bank only
    fp32       7.39            2.18      6.21         |  2.60               1.62
    bf16       4.71            1.82      3.82         |  2.83               1.74

Skipping the encoder's backward and every auto-encoder weight gradient makes the net's
part of a step ~1.6x cheaper, but the VGG19 loss (forward to relu4_3 and backward, the same
in both) is most of a step, so a whole incremental step is only ~1.2x faster than a full
stylizing step. Incremental training's real saving is in the number of steps (a bank alone
converges sooner; the CLI defaults to 3000 against 10000) and in having no identity steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _data(root: Path) -> tuple[str, list[str]]:
    """A content folder and three paintings: the shared data if present, else noise images."""
    paintings = [DATA / "style" / f"{n}.jpg" for n in ("starry_night", "the_scream", "great_wave")]
    if (DATA / "train" / "content").is_dir() and all(p.is_file() for p in paintings):
        return str(DATA / "train" / "content"), [str(p) for p in paintings]
    import numpy as np
    from PIL import Image

    (root / "content").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray((rng.random((320, 320, 3)) * 255).astype(np.uint8)).save(root / "content" / f"{i}.png")
    out = []
    for name in ("a", "b", "c"):
        Image.fromarray((rng.random((512, 512, 3)) * 255).astype(np.uint8)).save(root / f"{name}.png")
        out.append(str(root / f"{name}.png"))
    return str(root / "content"), out


def _step_times(run: Path) -> list[tuple[dict, float]]:
    """(log record, seconds that step took) for every step after the first."""
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [(cur, cur["seconds"] - prev["seconds"]) for prev, cur in zip(log, log[1:])]


def trainer_steps(args: argparse.Namespace, root: Path) -> dict[str, float]:
    from brushwork.training.stylebank import StyleBankTrainConfig, add_stylebank_style, train_stylebank

    content, styles = _data(root)
    common = {"content": [content], "steps": args.steps, "batch": args.batch, "crop": args.crop,
              "style_size": args.style_size, "log_every": 1, "checkpoint_every": 10**9, "widths": args.widths,
              "precision": args.precision}
    model = train_stylebank(StyleBankTrainConfig(styles=styles[:2], out_dir=str(root / "full"), **common))
    full = _step_times(root / "full")
    add_stylebank_style(StyleBankTrainConfig(styles=styles[2:], out_dir=str(root / "add"), base_model=str(model),
                                             **common))
    inc = _step_times(root / "add")
    style = [t for r, t in full if "total" in r]
    ident = [t for r, t in full if "reconstruction" in r]
    return {"full_style_step_s": statistics.median(style),
            "identity_step_s": statistics.median(ident) if ident else float("nan"),
            "incremental_step_s": statistics.median(t for _, t in inc)}


def net_only(args: argparse.Namespace, repeats: int = 5) -> dict[str, float]:
    import torch

    from brushwork.methods.stylebank import StyleBankConfig, StyleBankNet

    x = torch.rand(args.batch, 3, args.crop, args.crop).contiguous(memory_format=torch.channels_last)
    net = StyleBankNet(StyleBankConfig(widths=args.widths, style_names=("a", "b")))
    net = net.to(memory_format=torch.channels_last)
    w_full = torch.tensor([[1.0, 0.0]])

    def timed(w: torch.Tensor) -> float:
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            net(x, w).square().mean().backward()
            net.zero_grad(set_to_none=True)
            if i:  # the first is warm-up
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    full = timed(w_full)
    for p in net.parameters():
        p.requires_grad_(False)
    net.add_style("c")
    net.to(memory_format=torch.channels_last)
    inc = timed(torch.tensor([[0.0, 0.0, 1.0]]))
    return {"net_full_fwd_bwd_s": full, "net_bank_only_fwd_bwd_s": inc}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=9, help="steps per run (the first is warm-up)")
    p.add_argument("--style-size", type=int, default=512)
    p.add_argument("--widths", type=lambda s: tuple(int(v) for v in s.split(",")), default=(32, 64, 128))
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", metavar="FILE", help="also write the numbers here")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        res = {**trainer_steps(args, Path(tmp)), **net_only(args)}
    res["trainer_speedup"] = res["full_style_step_s"] / res["incremental_step_s"]
    res["net_speedup"] = res["net_full_fwd_bwd_s"] / res["net_bank_only_fwd_bwd_s"]
    setup = {"crop": args.crop, "batch": args.batch, "steps": args.steps, "widths": list(args.widths),
             "precision": args.precision, "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(f"StyleBank per-step time, {args.batch}x{args.crop}px, widths {args.widths}, {args.precision}, "
          f"{torch.get_num_threads()} threads")
    print("| measurement | seconds |\n| --- | --- |")
    for key in ("full_style_step_s", "identity_step_s", "incremental_step_s", "net_full_fwd_bwd_s",
                "net_bank_only_fwd_bwd_s"):
        print(f"| {key} | {res[key]:.3f} |")
    print(f"incremental vs full stylizing step: {res['trainer_speedup']:.2f}x faster "
          f"(net alone: {res['net_speedup']:.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps({"setup": setup, **res}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
