"""``brushwork train METHOD``: the CLI face of :mod:`brushwork.training`."""

from __future__ import annotations

import argparse
import shlex
import sys


def add_parser(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    train = sub.add_parser("train", help="train a model (resumable: run the same command again to continue)")
    tsub = train.add_subparsers(dest="train_method", metavar="METHOD", parser_class=parser_class, required=True)
    ad = tsub.add_parser("adain", help="train an AdaIN decoder for arbitrary styles")
    ad.add_argument("--content", action="append", required=True, metavar="DIR", help="folder of photos (repeatable)")
    ad.add_argument("--styles", action="append", required=True, metavar="DIR", help="folder of paintings (repeatable)")
    ad.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                    help="hold out files whose name matches (e.g. '*scream*'; repeatable)")
    ad.add_argument("-o", "--output", required=True, metavar="MODEL_DIR",
                    help="run folder: checkpoint, log.jsonl, losses.png, and the model in MODEL_DIR/model")
    ad.add_argument("--steps", type=int, default=4000)
    ad.add_argument("--batch", type=int, default=8)
    ad.add_argument("--crop", type=int, default=256, help="training crop size in px (multiple of 8)")
    ad.add_argument("--lr", type=float, default=1e-4)
    ad.add_argument("--lr-decay", type=float, default=5e-5, help="lr / (1 + decay * step)")
    ad.add_argument("--style-weight", type=float, default=20.0)
    ad.add_argument("--seed", type=int, default=0)
    ad.add_argument("--device", default="cpu")
    ad.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ad.add_argument("--checkpoint-every", type=int, default=200)
    ad.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from brushwork.training.adain import AdaINTrainConfig, train_adain

    cfg = AdaINTrainConfig(
        content=args.content, styles=args.styles, out_dir=args.output, steps=args.steps, batch=args.batch,
        crop=args.crop, lr=args.lr, lr_decay=args.lr_decay,
        exclude=args.exclude, style_weight=args.style_weight, seed=args.seed, precision=args.precision,
        checkpoint_every=args.checkpoint_every, command="brushwork " + shlex.join(sys.argv[1:]),
    )
    bar = None

    def progress(step: int, total: int, losses: dict[str, float]) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=step - 1, desc="train adain", unit="step", disable=args.quiet,
                       file=sys.stderr, dynamic_ncols=True)
        bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
        bar.update(1)

    try:
        model = train_adain(cfg, device=args.device, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"decoder -> {model} (use: brushwork stylize photo.jpg -s painting.jpg --method adain --decoder {model})")
    return 0
