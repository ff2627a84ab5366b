"""``brushwork train METHOD``: the CLI face of :mod:`brushwork.training`."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import Any

#: FeedForwardTrainConfig's defaults, spelled out so building the parser imports no torch (a test keeps them equal).
FEEDFORWARD_DEFAULTS = {"steps": 10000, "batch": 4, "crop": 256, "lr": 1e-3, "lr_decay": 0.0, "style_weight": 10.0,
                        "tv_weight": 1.0, "saturation_weight": 1.0, "style_size": 512, "widths": (32, 64, 128),
                        "n_residual": 5, "end_kernel": 9}
#: DistillConfig's defaults (a test keeps them equal).
DISTILL_DEFAULTS = {"steps": 3000, "batch": 8, "crop": 256, "lr": 2e-4, "lr_decay": 0.0}
#: StyleBankTrainConfig.steps and style_steps, and ADD_STYLE_STEPS (a test keeps them equal).
STYLEBANK_STEPS, STYLEBANK_STYLE_STEPS, STYLEBANK_ADD_STEPS = 10000, 2, 3000
#: GhiasiTrainConfig's defaults (a test keeps them equal).
GHIASI_DEFAULTS = {"steps": 20000, "batch": 4, "crop": 256, "lr": 5e-4, "augment": 4, "style_size": 256,
                   "widths": (16, 32, 64), "clip_grad": 1.0}

#: CycleGANTrainConfig's defaults (a test keeps them equal).
CYCLEGAN_DEFAULTS = {"steps": 200000, "batch": 1, "crop": 256, "lr": 2e-4, "ngf": 64, "n_blocks": 9, "ndf": 64,
                     "cycle_weight": 10.0, "identity": 0.5, "pool_size": 50, "sample_every": 500}


def _common(p: argparse.ArgumentParser, steps: int | None, batch: int, crop: int, lr: float, lr_decay: float,
            style_weight: float | None, crop_multiple: int) -> None:
    """Options every trainer shares (their defaults differ per method; distillation has no style weight)."""
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="hold out files whose name matches (e.g. '*scream*'; repeatable)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR",
                   help="run folder: checkpoint, log.jsonl, losses.png, and the model in MODEL_DIR/model")
    p.add_argument("--steps", type=int, default=steps,
                   help=None if steps is not None else f"default {STYLEBANK_STEPS}, or {STYLEBANK_ADD_STEPS} "
                                                         "with --add-style")
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--crop", type=int, default=crop, help=f"training crop size in px (multiple of {crop_multiple})")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--lr-decay", type=float, default=lr_decay, help="lr / (1 + decay * step)")
    if style_weight is not None:
        p.add_argument("--style-weight", type=float, default=style_weight)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("-q", "--quiet", action="store_true")


def add_parser(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    train = sub.add_parser("train", help="train a model (resumable: run the same command again to continue)")
    tsub = train.add_subparsers(dest="train_method", metavar="METHOD", parser_class=parser_class, required=True)
    ad = tsub.add_parser("adain", help="train an AdaIN decoder for arbitrary styles")
    ad.add_argument("--content", action="append", required=True, metavar="DIR", help="folder of photos (repeatable)")
    ad.add_argument("--styles", action="append", required=True, metavar="DIR", help="folder of paintings (repeatable)")
    _common(ad, steps=4000, batch=8, crop=256, lr=1e-4, lr_decay=5e-5, style_weight=20.0, crop_multiple=8)

    for method, help_text, style_help in (
        ("johnson", "train a fast net for one painting (Johnson et al. 2016)", "the painting (one file)"),
        ("cin", "train one fast net for several paintings, blendable (Dumoulin et al. 2017)",
         "a painting (repeat for each style; its file name, without extension, names the style)"),
    ):
        p = tsub.add_parser(method, help=help_text)
        p.add_argument("--style", action="append", required=True, metavar="PAINTING", help=style_help)
        p.add_argument("--content", action="append", required=True, metavar="DIR",
                       help="folder of photos (repeatable)")
        _common(p, **{k: FEEDFORWARD_DEFAULTS[k] for k in ("steps", "batch", "crop", "lr", "lr_decay", "style_weight")},
                crop_multiple=4)
        p.add_argument("--saturation-weight", type=float, default=FEEDFORWARD_DEFAULTS["saturation_weight"],
                       help="penalty on saturated outputs, which otherwise freeze blown-out blobs in place")
        p.add_argument("--tv-weight", type=float, default=FEEDFORWARD_DEFAULTS["tv_weight"],
                       help="total-variation (smoothness) weight")
        p.add_argument("--style-size", type=int, default=FEEDFORWARD_DEFAULTS["style_size"], metavar="PX",
                       help="the painting's longest side for its style targets: bigger = smaller strokes "
                            "relative to the crop")
        p.add_argument("--widths", type=_widths, default=FEEDFORWARD_DEFAULTS["widths"], metavar="C1,C2,C3",
                       help="channels at full, 1/2 and 1/4 resolution (default 32,64,128; 16,32,64 runs "
                            "~2.7x faster)")
        p.add_argument("--residual", type=int, default=FEEDFORWARD_DEFAULTS["n_residual"], metavar="N",
                       help="residual blocks at 1/4 resolution")
        p.add_argument("--end-kernel", type=int, default=FEEDFORWARD_DEFAULTS["end_kernel"], metavar="K",
                       help="size of the first and last full-resolution convolutions (Johnson's 9; 5 is faster)")

    ds = tsub.add_parser("distill", help="train a smaller, faster copy of a johnson/cin model from its outputs "
                                         "(no VGG: hours of style training carry over, CPU-friendly)")
    ds.add_argument("--teacher", required=True, metavar="MODEL",
                    help="the model to copy: a model folder, a built-in model or one of its styles (e.g. cin), "
                         "or ghiasi (with --styles)")
    ds.add_argument("--styles", action="append", default=[], metavar="DIR",
                    help="folder of paintings a ghiasi teacher paints with (repeatable)")
    ds.add_argument("--exclude-style", action="append", default=[], metavar="GLOB",
                    help="painting file names to hold out (repeatable)")
    ds.add_argument("--content", action="append", required=True, metavar="DIR", help="folder of photos (repeatable)")
    _common(ds, **DISTILL_DEFAULTS, style_weight=None, crop_multiple=4)
    ds.add_argument("--widths", type=_widths, default=None, metavar="C1,C2,C3", help="default: the teacher's")
    ds.add_argument("--residual", type=int, default=None, metavar="N", help="default: the teacher's")
    ds.add_argument("--end-kernel", type=int, default=None, metavar="K",
                    help="default: the teacher's (5 instead of 9 makes a 1024 px pass ~20%% faster)")
    ds.add_argument("--subpixel", action="store_true",
                    help="no full-resolution layers: pixels enter and leave as 2x2 blocks at 1/2 resolution "
                         "(a 1024 px pass on onnxruntime about twice as fast); C1 of --widths is then the "
                         "last 1/2-resolution layer")
    ds.add_argument("--stem", type=int, default=None, metavar="N",
                    help="with --subpixel: 1/2-resolution layers before the stride-2 one (default 1)")
    ds.add_argument("--init", default=None, metavar="MODEL",
                    help="start from a previous student (its layers where they fit, the teacher's elsewhere)")
    ds.add_argument("--blend", type=float, default=0.25, metavar="P",
                    help="share of crops trained on a random blend of two styles, so blends match the teacher")
    ds.add_argument("--saturation-weight", type=float, default=FEEDFORWARD_DEFAULTS["saturation_weight"])

    gh = tsub.add_parser("ghiasi", help="train a style-prediction network: any painting in one fast pass "
                                        "(Ghiasi et al. 2017)")
    gh.add_argument("--content", action="append", required=True, metavar="DIR", help="folder of photos (repeatable)")
    gh.add_argument("--styles", action="append", required=True, metavar="DIR",
                    help="folder of paintings (repeatable; subfolders included)")
    _common(gh, steps=GHIASI_DEFAULTS["steps"], batch=GHIASI_DEFAULTS["batch"], crop=GHIASI_DEFAULTS["crop"],
            lr=GHIASI_DEFAULTS["lr"], lr_decay=0.0, style_weight=FEEDFORWARD_DEFAULTS["style_weight"],
            crop_multiple=4)
    gh.add_argument("--exclude-style", action="append", default=[], metavar="GLOB",
                    help="hold out paintings whose file name matches (repeatable)")
    gh.add_argument("--init", metavar="MODEL", default=None,
                    help="start the transformer from a trained CIN model of the same layout (e.g. cin, the shipped "
                         "one); its convolutions then train at lr/5")
    gh.add_argument("--augment", type=int, default=GHIASI_DEFAULTS["augment"], metavar="N",
                    help="augmented views per painting in the precomputed bank (hue, saturation, brightness, flips, "
                         "scale and crop)")
    gh.add_argument("--style-size", type=int, default=GHIASI_DEFAULTS["style_size"], metavar="PX",
                    help="the paintings' size for their statistics and style targets")
    gh.add_argument("--widths", type=_widths, default=GHIASI_DEFAULTS["widths"], metavar="C1,C2,C3")
    gh.add_argument("--residual", type=int, default=5, metavar="N")
    gh.add_argument("--end-kernel", type=int, default=5, metavar="K")
    gh.add_argument("--condition", choices=["all", "decoder"], default="all",
                    help="norms the embedding drives: all, or residual + upsampling only (Magenta)")
    gh.add_argument("--clip-grad", type=float, default=GHIASI_DEFAULTS["clip_grad"], metavar="NORM",
                    help="cap on the gradients' global norm (0: off); keeps a rare huge batch from throwing the "
                         "net off")
    gh.add_argument("--tv-weight", type=float, default=FEEDFORWARD_DEFAULTS["tv_weight"])
    gh.add_argument("--saturation-weight", type=float, default=FEEDFORWARD_DEFAULTS["saturation_weight"])

    sb = tsub.add_parser("stylebank", help="train one auto-encoder with a style bank per painting, or add a "
                                           "painting to a trained one (Chen et al. 2017)")
    what = sb.add_mutually_exclusive_group(required=True)
    what.add_argument("--style", action="append", metavar="PAINTING",
                      help="a painting (repeat for each style; its file name, without extension, names the style)")
    what.add_argument("--add-style", metavar="PAINTING",
                      help="train only a new bank for this painting into the model given by --from")
    sb.add_argument("--from", dest="base_model", metavar="MODEL_DIR",
                    help="with --add-style: the trained StyleBank model folder (e.g. RUN/model)")
    sb.add_argument("--content", action="append", required=True, metavar="DIR", help="folder of photos (repeatable)")
    _common(sb, steps=None, **{k: FEEDFORWARD_DEFAULTS[k] for k in ("batch", "crop", "lr", "lr_decay",
                                                                      "style_weight")}, crop_multiple=4)
    sb.add_argument("--tv-weight", type=float, default=FEEDFORWARD_DEFAULTS["tv_weight"],
                    help="total-variation (smoothness) weight")
    sb.add_argument("--style-size", type=int, default=FEEDFORWARD_DEFAULTS["style_size"], metavar="PX",
                    help="the painting's longest side for its style targets")
    sb.add_argument("--style-steps", type=int, default=STYLEBANK_STYLE_STEPS, metavar="T",
                    help="stylizing steps before each auto-encoder (identity) step: the paper's T")

    _add_cyclegan(tsub)


def _add_cyclegan(tsub: argparse._SubParsersAction) -> None:
    d = CYCLEGAN_DEFAULTS
    cg = tsub.add_parser("cyclegan", help="translate photos into a painter's whole collection (and back) from two "
                                          "unpaired folders (CycleGAN, Zhu et al. 2017)")
    cg.add_argument("--photos", action="append", required=True, metavar="DIR", help="folder of photos (repeatable)")
    cg.add_argument("--paintings", action="append", required=True, metavar="DIR",
                    help="folder of the painter's paintings (repeatable)")
    _common(cg, steps=d["steps"], batch=d["batch"], crop=d["crop"], lr=d["lr"], lr_decay=0.0, style_weight=None,
            crop_multiple=4)
    cg.add_argument("--exclude-painting", action="append", default=[], metavar="GLOB",
                    help="hold out paintings whose file name matches (repeatable)")
    cg.add_argument("--generator", choices=["resnet", "unet"], default="resnet",
                    help="resnet (the paper's: residual blocks at 1/4 size) or unet (encoder-decoder with skips)")
    cg.add_argument("--ngf", type=int, default=d["ngf"], help="generator channels of the first layer (paper 64; "
                                                               "16-32 for CPU)")
    cg.add_argument("--blocks", type=int, default=d["n_blocks"], help="resnet: residual blocks (paper: 9 at 256 px, "
                                                                       "6 at 128 px)")
    cg.add_argument("--depth", type=int, default=None, help="unet: downsamplings (default 8 at 256 px, 7 at 128)")
    cg.add_argument("--ndf", type=int, default=d["ndf"], help="discriminator channels of the first layer")
    cg.add_argument("--upsample", choices=["resize", "transposed"], default="resize",
                    help="resize: nearest 2x + conv (no checkerboards, default); transposed: the paper's layer")
    cg.add_argument("--name", default="painting", help="the painting domain's name: the model's style (e.g. monet)")
    cg.add_argument("--decay-start", type=int, default=None, metavar="STEP",
                    help="step where the linear lr decay to 0 begins (default: half of --steps)")
    cg.add_argument("--cycle-weight", type=float, default=d["cycle_weight"])
    cg.add_argument("--identity", type=float, default=d["identity"], help="identity weight, as a share of the "
                                                                          "cycle weight (0 = off)")
    cg.add_argument("--pool", type=int, default=d["pool_size"], help="past fakes the discriminators also see")
    cg.add_argument("--init", default=None, metavar="MODEL",
                    help="start both generators from a trained CycleGAN of the same layout (a folder or a shipped "
                         "name, e.g. monet): a new leg keeps what earlier training learnt; the discriminators "
                         "start fresh")
    cg.add_argument("--d-warmup", type=int, default=200, metavar="N",
                    help="with --init: the first N steps train only the discriminators")
    cg.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                    help="ship an exponential moving average of the generators' weights (e.g. 0.999: about the "
                         "last 1000 steps), which damps a GAN's swings; 0 = the raw generators")
    cg.add_argument("--sample-every", type=int, default=d["sample_every"], metavar="N",
                    help="write a sheet of held-out photos through the generators every N steps (0 = never)")


def _widths(text: str) -> tuple[int, ...]:
    """``32,64,128`` -> (32, 64, 128); argparse turns the ValueError into a usage error."""
    widths = tuple(int(v) for v in text.split(","))
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(text)
    return widths


def _progress(desc: str, quiet: bool) -> tuple[Callable[[int, int, dict[str, float]], None], Callable[[], None]]:
    """A tqdm callback opened at the first step (input errors come before any bar), and its closer."""
    from tqdm import tqdm

    bar = None

    def progress(step: int, total: int, losses: dict[str, float]) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=step - 1, desc=desc, unit="step", disable=quiet, file=sys.stderr,
                       dynamic_ncols=True)
        bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if k != "style_index"}, refresh=False)
        bar.update(1)

    def close() -> None:
        if bar is not None:
            bar.close()

    return progress, close


def _train(desc: str, args: argparse.Namespace, trainer: Callable[..., Any], cfg: Any) -> Any:
    """``trainer(cfg)`` on ``args.device`` with a progress bar that is closed however the run ends."""
    progress, close = _progress(desc, args.quiet)
    try:
        return trainer(cfg, device=args.device, progress=progress)
    finally:
        close()


def run(args: argparse.Namespace) -> int:
    """Run a trainer; under torchrun each process joins the group first (one rank writes, see training.distributed)."""
    runner = {"johnson": _run_feedforward, "cin": _run_feedforward, "stylebank": _run_stylebank,
              "distill": _run_distill, "ghiasi": _run_ghiasi, "cyclegan": _run_cyclegan}.get(
        args.train_method, _run_adain)
    if not _torchrun():
        return runner(args)
    from brushwork.training import distributed

    with distributed.launch(args.device) as device:
        args.device = str(device)
        args.quiet = args.quiet or not distributed.is_main()
        return runner(args)


def _torchrun() -> bool:
    """Launched by torchrun with more than one process (checked without importing torch)."""
    import os

    return os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1")


def _report(text: str) -> None:
    """The closing line, printed once (by rank 0 under torchrun)."""
    if _torchrun():
        from brushwork.training import distributed

        if not distributed.is_main():
            return
    print(text)


def _command() -> str:
    return "brushwork " + shlex.join(sys.argv[1:])


def _run_adain(args: argparse.Namespace) -> int:
    from brushwork.training.adain import AdaINTrainConfig, train_adain

    cfg = AdaINTrainConfig(
        content=args.content, styles=args.styles, out_dir=args.output, steps=args.steps, batch=args.batch,
        crop=args.crop, lr=args.lr, lr_decay=args.lr_decay,
        exclude=args.exclude, style_weight=args.style_weight, seed=args.seed, precision=args.precision,
        checkpoint_every=args.checkpoint_every, command=_command(),
    )
    model = _train("train adain", args, train_adain, cfg)
    _report(f"decoder -> {model} (use: brushwork stylize photo.jpg -s painting.jpg --method adain --decoder {model})")
    return 0


def _run_feedforward(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.training.feedforward import FeedForwardTrainConfig, train_feedforward

    if args.train_method == "johnson" and len(args.style) != 1:
        raise ConfigError(f"johnson trains one painting per net, got {len(args.style)} --style: "
                          "use `brushwork train cin` for several in one net")
    if args.train_method == "cin" and len(args.style) < 2:
        raise ConfigError("cin trains several paintings in one net: give --style at least twice "
                          "(for one painting use `brushwork train johnson`)")
    cfg = FeedForwardTrainConfig(
        content=args.content, styles=args.style, out_dir=args.output, steps=args.steps, batch=args.batch,
        crop=args.crop, lr=args.lr, lr_decay=args.lr_decay, style_weight=args.style_weight,
        tv_weight=args.tv_weight, style_size=args.style_size, exclude=args.exclude, seed=args.seed,
        precision=args.precision, checkpoint_every=args.checkpoint_every, command=_command(),
        saturation_weight=args.saturation_weight, widths=args.widths, n_residual=args.residual,
        end_kernel=args.end_kernel,
    )
    model = _train(f"train {args.train_method}", args, train_feedforward, cfg)
    _report(f"{args.train_method} model ({', '.join(cfg.names())}) -> {model} "
            f"(use: brushwork stylize photo.jpg --model {model} -o out.png)")
    return 0


def _run_distill(args: argparse.Namespace) -> int:
    from brushwork.training.distill import DistillConfig, distill_feedforward

    cfg = DistillConfig(
        teacher=args.teacher, content=args.content, out_dir=args.output, styles=args.styles,
        exclude_styles=args.exclude_style, widths=args.widths, n_residual=args.residual,
        end_kernel=args.end_kernel, subpixel=args.subpixel, stem=args.stem, init=args.init, steps=args.steps,
        batch=args.batch, crop=args.crop,
        lr=args.lr, lr_decay=args.lr_decay, blend=args.blend, saturation_weight=args.saturation_weight, seed=args.seed,
        precision=args.precision, checkpoint_every=args.checkpoint_every, exclude=args.exclude, command=_command(),
    )
    model = _train("train distill", args, distill_feedforward, cfg)
    _report(f"distilled model -> {model} (use: brushwork stylize photo.jpg --model {model} -o out.png)")
    return 0


def _run_stylebank(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.training.stylebank import StyleBankTrainConfig, add_stylebank_style, train_stylebank

    adding = args.add_style is not None
    if adding and not args.base_model:
        raise ConfigError("--add-style needs --from MODEL_DIR: the trained StyleBank model to add the style to")
    if not adding and args.base_model:
        raise ConfigError("--from goes with --add-style (to train a new net, give --style for each painting)")
    steps = args.steps if args.steps is not None else (STYLEBANK_ADD_STEPS if adding else STYLEBANK_STEPS)
    cfg = StyleBankTrainConfig(
        content=args.content, styles=[args.add_style] if adding else args.style, out_dir=args.output,
        base_model=args.base_model or "", steps=steps, batch=args.batch, crop=args.crop, lr=args.lr,
        lr_decay=args.lr_decay, style_weight=args.style_weight, tv_weight=args.tv_weight, style_size=args.style_size,
        style_steps=args.style_steps, exclude=args.exclude, seed=args.seed, precision=args.precision,
        checkpoint_every=args.checkpoint_every, command=_command(),
    )
    model = _train("train stylebank" + (" --add-style" if adding else ""), args,
                   add_stylebank_style if adding else train_stylebank, cfg)
    what = f"added '{cfg.names()[0]}'" if adding else f"stylebank model ({', '.join(cfg.names())})"
    _report(f"{what} -> {model}")
    return 0


def _run_ghiasi(args: argparse.Namespace) -> int:
    from brushwork.training.ghiasi import GhiasiTrainConfig, train_ghiasi

    cfg = GhiasiTrainConfig(
        content=args.content, styles=args.styles, out_dir=args.output, steps=args.steps, batch=args.batch,
        crop=args.crop, lr=args.lr, lr_decay=args.lr_decay, style_weight=args.style_weight, tv_weight=args.tv_weight,
        saturation_weight=args.saturation_weight, style_size=args.style_size, augment=args.augment,
        widths=args.widths, n_residual=args.residual, end_kernel=args.end_kernel, condition=args.condition,
        init=args.init, seed=args.seed, precision=args.precision, checkpoint_every=args.checkpoint_every,
        exclude=args.exclude, exclude_styles=args.exclude_style, command=_command(), clip_grad=args.clip_grad,
    )
    model = _train("train ghiasi", args, train_ghiasi, cfg)
    _report(f"ghiasi model -> {model} (use: brushwork stylize photo.jpg -s painting.jpg --method ghiasi "
            f"--model {model})")
    return 0


def _run_cyclegan(args: argparse.Namespace) -> int:
    from brushwork.training.cyclegan import CycleGANTrainConfig, train_cyclegan

    if args.lr_decay:
        from brushwork.errors import ConfigError

        raise ConfigError("--lr-decay: a CycleGAN decays linearly after --decay-start instead")
    cfg = CycleGANTrainConfig(
        photos=args.photos, paintings=args.paintings, out_dir=args.output, generator=args.generator, ngf=args.ngf,
        n_blocks=args.blocks, depth=args.depth, ndf=args.ndf, upsample=args.upsample, name=args.name,
        steps=args.steps, decay_start=args.decay_start, batch=args.batch, crop=args.crop, lr=args.lr,
        cycle_weight=args.cycle_weight, identity=args.identity, pool_size=args.pool, seed=args.seed,
        precision=args.precision, checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
        exclude=args.exclude, exclude_paintings=args.exclude_painting, command=_command(), init=args.init,
        d_warmup=args.d_warmup, ema=args.ema,
    )
    model = _train("train cyclegan", args, train_cyclegan, cfg)
    _report(f"cyclegan model (photo -> {cfg.name}, and back) -> {model} "
            f"(use: brushwork stylize photo.jpg --model {model} -o out.png; -s photo for the reverse)")
    return 0
