"""``brushwork batch IN_DIR -o OUT_DIR``: the CLI face of :mod:`brushwork.batch`.

Exit codes: 0 every photo done (or already done), 3 some photos failed and the rest were done
(each failure is one line on stderr and in ``OUT_DIR/batch_summary.json``), 2 a usage error
(nothing was stylized), 130 interrupted (a re-run continues).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from brushwork.cli.options import DEFAULT_MAX_SIZE, add_stylizer_options, number, positive_int, stylize_options

EXIT_PARTIAL = 3


def add_parser(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("batch", help="stylize a folder and its subfolders (resumable; locally or on Ray)",
                       description="Stylize every photo under IN_DIR into OUT_DIR (subfolders mirrored). A re-run "
                                   "does only what is missing or was made with other settings. Exit 0: all done; "
                                   f"{EXIT_PARTIAL}: some photos failed, the rest done; 2: usage error.")
    p.add_argument("in_dir", metavar="IN_DIR", help="folder of photos (subfolders included)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="output folder; also holds batch_manifest.jsonl (what is done) and batch_summary.json")
    add_stylizer_options(p, "photos", ("luminance", "match"))
    p.add_argument("--format", choices=["png", "jpg"], default=None,
                   help="output format (default: .jpg photos stay .jpg, the others become .png)")
    p.add_argument("--overwrite", action="store_true", help="redo every photo, even those already done")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run on Ray Data: HOST:PORT or ray://HOST:PORT (a cluster), auto (RAY_ADDRESS or the "
                        "cluster started on this machine), local[:CPUS] (a private Ray here); needs brushwork[ray]")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="--ray: number of actors, each loading the model once (default: cluster CPUs / "
                        "--cpus-per-worker)")
    p.add_argument("--cpus-per-worker", type=number, default=1.0, metavar="N", help="--ray: CPUs per actor")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (failures are still reported)")
    from brushwork.cli.inspect import add_output_flags

    add_output_flags(p)


def _options(args: argparse.Namespace) -> Any:
    return stylize_options(args, DEFAULT_MAX_SIZE if args.size is None else args.size)


def run(args: argparse.Namespace) -> int:
    """Plan, run (locally or on Ray) with a tqdm bar, print the summary; 0, or 3 when some photos failed."""
    from tqdm import tqdm

    from brushwork.batch import BatchSettings, FileResult, plan_batch, run_local
    from brushwork.errors import ConfigError

    if args.ray is None and (args.workers is not None or args.cpus_per_worker != 1.0):
        raise ConfigError("--workers and --cpus-per-worker go with --ray")
    from brushwork.cli.inspect import provenance_for

    options = _options(args)
    prov = provenance_for(args, options.method or ("feedforward" if options.model else "adain"), options.styles,
                          model=options.model, model_files=[m for m in [options.model] if m and os.path.exists(m)],
                          settings={"size": options.size, "strength": options.strength,
                                    "preserve_color": options.preserve_color})
    plan = plan_batch(args.in_dir, args.output, BatchSettings(options, format=args.format, provenance=prov,
                                                              watermark=not args.no_watermark),
                      overwrite=args.overwrite)
    if not args.quiet:
        for row in plan.ignored:
            print(f"brushwork: ignored {row['input']}: {row['reason']}", file=sys.stderr)
    bar: Any = None

    def progress(result: FileResult, finished: int, total: int) -> None:
        nonlocal bar
        if bar is None:  # opened at the first photo, so a setup error is not preceded by an empty bar
            bar = tqdm(total=total, desc="batch", unit="img", disable=args.quiet, file=sys.stderr,
                       dynamic_ncols=True)
        if result.status == "failed":
            tqdm.write(f"brushwork: failed {result.input}: {result.reason}", file=sys.stderr)
        bar.update(1)

    try:
        if args.ray is None:
            summary = run_local(plan, progress)
        else:
            from brushwork.batch.ray import run_ray

            summary = run_ray(plan, address=args.ray, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                              gpus_per_worker=1.0 if args.device.startswith("cuda") else 0.0, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(summary.to_dict()))
    elif not args.quiet or summary.failed:
        ignored = f", {summary.ignored} ignored" if summary.ignored else ""
        print(f"batch: {summary.done} done, {summary.skipped} skipped, {summary.failed} failed{ignored} "
              f"in {summary.seconds:.1f} s -> {plan.out_dir} (summary: batch_summary.json)")
    return EXIT_PARTIAL if summary.failed else 0
