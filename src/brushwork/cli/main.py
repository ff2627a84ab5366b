"""The ``brushwork`` command: a thin layer over the library.

Every user error ends as one line on stderr and exit code 2; heavy imports (torch)
happen only inside commands, so ``brushwork --version`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from brushwork import __version__
from brushwork.cli.options import (
    DEFAULT_MAX_SIZE,
    ENGINE_HELP,
    add_tiling_options,
    number,
    parse_model_styles,
    parse_style,
    positive_int,
)
from brushwork.inference.engine import ENGINES
from brushwork.methods.registry import all_options, flag_of, method_names, methods

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def add_method_options(p: argparse.ArgumentParser) -> None:
    """Every registered method's own options as flags (each once, whichever methods share it)."""
    for f, _owners in all_options().values():
        meta = f.metadata
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
        if meta["action"] == "store_true":
            kwargs.update(action="store_true", default=False)
        else:
            kwargs["default"] = [] if meta["action"] == "append" else None
            for key in ("type", "choices", "action", "metavar", "nargs"):
                if meta[key] is not None:
                    kwargs[key] = list(meta[key]) if key == "choices" else meta[key]
        p.add_argument(flag_of(f), **kwargs)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``only`` a command name: that subcommand alone (what a run of it parses, without
    the ~10 ms of building the others' options and help)."""

    from brushwork.cli import inspect as _inspect

    def want(name: str) -> bool:
        return only is None or only == name

    parser = _Parser(prog="brushwork", description="Neural style transfer: turn a photo into a painting's style.")
    parser.add_argument("--version", action="version", version=f"brushwork {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    if want("stylize"):
        st = sub.add_parser("stylize", help="stylize photos with one or more styles")
        st.add_argument("photos", nargs="+", metavar="PHOTO", help="photo(s) to stylize")
        st.add_argument("-s", "--style", action="append", default=[], metavar="STYLE[:WEIGHT]",
                        help="painting image or preset name, optionally with a blend weight (repeat to blend); "
                             "with --model, the model's style names")
        st.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output image (.png/.jpg), or a folder when several photos are given")
        st.add_argument("--method", default=None, choices=method_names(with_aliases=True),
                        help="; ".join(f"{m.name}: {m.summary}" for m in methods())
                             + "; cin: the shipped many-style net (-s its styles, blendable). Default: the fastest "
                               "installed method for any painting, optimize when an option only it takes is given")
        st.add_argument("--size", type=positive_int, default=None,
                        help="longest side of the output in px (default 512 for optimize; the photo's own, "
                             f"at most {DEFAULT_MAX_SIZE} px, for the one-pass methods)")
        st.add_argument("--model", metavar="NAME",
                        help="a fast trained model: a shipped model or style name (see `brushwork models`), a "
                             "trained folder (brushwork train johnson|cin|stylebank|ghiasi), or an exported .onnx file")
        st.add_argument("--engine", default="auto", choices=ENGINES, help=ENGINE_HELP)
        st.add_argument("--upscale", action="store_true", help="allow an output larger than the photo")
        st.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
        st.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 where the hardware is fast at it")
        st.add_argument("--strength", type=number, default=None,
                        help="style strength 0..1 (0 = photo; default 0.5 for optimize, 1 for the one-pass methods)")
        st.add_argument("--preserve-color", choices=["luminance", "match"], default=None,
                        help="keep the photo's colours: luminance-only transfer, or match the painting's colours first")
        st.add_argument("--mask", metavar="MASK", help="white = styled, black = photo kept")
        st.add_argument("--mask-for", nargs=2, action="append", default=[], metavar=("STYLE", "MASK"),
                        help="apply STYLE (as given to -s, or its 1-based index) only where MASK is white")
        add_tiling_options(st)
        add_method_options(st)
        st.add_argument("--json", action="store_true", help="print one JSON object per photo on stdout")
        st.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        _inspect.add_output_flags(st)

    if want("demo"):
        demo = sub.add_parser("demo", help="a real stylization of a bundled photo, no files needed")
        demo.add_argument("-o", "--output", default="brushwork_demo.png")
        demo.add_argument("-s", "--style", default="starry_night", help="preset name (see `brushwork styles`)")
        demo.add_argument("--model", default=None, metavar="NAME",
                          help="a shipped fast model or one of its styles (see `brushwork models`), e.g. starry_night")
        demo.add_argument("--method", default=None,
                          choices=[m.name for m in methods() if m.arbitrary or not m.one_pass],
                          help="default: the fastest installed method for any painting (seconds), else optimize")
        demo.add_argument("--size", type=positive_int, default=None, help="default 512 (one pass), 384 (optimize)")
        demo.add_argument("--steps", type=positive_int, default=150, help="optimize only")
        demo.add_argument("--device", default="cpu")
        demo.add_argument("-q", "--quiet", action="store_true")
        _inspect.add_output_flags(demo)

    if want("styles"):
        sub.add_parser("styles", help="list the built-in and saved style presets")

    if want("models"):
        models = sub.add_parser("models", help="list the trained models shipped with brushwork")
        models.add_argument("--json", action="store_true")

    if want("preset"):
        preset = sub.add_parser("preset", help="save a painting's (or a collection's) statistics as a named style")
        psub = preset.add_subparsers(dest="preset_command", metavar="ACTION", parser_class=_Parser, required=True)
        save = psub.add_parser("save", help="store a painting's feature statistics (not the image) under a name; "
                                            "a folder of paintings gives the collection's style")
        save.add_argument("image", help="a painting, or a folder of paintings (a painter's or a school's works)")
        save.add_argument("--name", required=True)
        save.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                          help="with a folder: leave out files whose names match (repeat)")
        save.add_argument("-q", "--quiet", action="store_true", help="no progress bar (a folder)")

    for name in ("train", "batch", "export", "video", "inspect", "serve"):  # each in its own module
        if want(name):
            importlib.import_module(f"brushwork.cli.{name}").add_parser(sub, _Parser)
    return parser


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

    def __init__(self, total: int, desc: str, disable: bool, unit: str = "step") -> None:
        self.kwargs = {"total": total, "desc": desc, "unit": unit, "disable": disable, "file": sys.stderr,
                       "dynamic_ncols": True}
        self.bar = None

    def progress(self, done: int, total: int) -> None:
        """``(done, total)`` progress (tiles): the bar opens at the first call with its total."""
        self.kwargs["total"] = total
        bar = self._open()
        bar.update(done - bar.n)

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


def _cmd_stylize(args: argparse.Namespace) -> int:
    """Any registered method: chosen by --method or inferred from --model and the options given."""
    from brushwork.errors import ConfigError
    from brushwork.image.io import image_size, save_image
    from brushwork.methods.registry import Request, get_method, infer_method, match_style, options_from

    values = vars(args)
    if args.method == "cin" and not args.model:  # the shipped many-style net, unless --model names another
        from brushwork.registry import shipped_models

        cin = [m.name for m in shipped_models() if m.kind == "cin"]
        if not cin:
            raise ConfigError("no cin model is installed: train one (brushwork train cin) and pass --model DIR")
        args.model = cin[0]
    method = get_method(args.method) if args.method else infer_method(values, args.model)
    if args.method is None and not args.model and not args.style:
        raise ConfigError("give a style with -s (a painting or a preset name; see `brushwork styles`)")
    if args.model and not (method.needs_model or method.name == "ghiasi"):
        raise ConfigError(f"--model goes with --method feedforward (a trained net), not {method.name}")
    if method.needs_model:
        try:
            options = options_from(method, values)
        except ConfigError as exc:
            raise ConfigError(str(exc).split(":")[0] + ": not an option of a feed-forward --model") from None
        styles = parse_model_styles(args.style)
    else:
        options = options_from(method, values)
        styles = [parse_style(s) for s in args.style]
        if not styles:
            raise ConfigError("give a style with -s (a painting or a preset name; see `brushwork styles`)")
    masks: list[str | None] = [None] * len(styles)
    for key, mask in args.mask_for:
        masks[match_style(key, styles)] = mask
    request = Request(styles=styles, options=options, size=args.size if args.size is not None else method.default_size,
                      strength=args.strength, preserve_color=args.preserve_color, mask=args.mask,
                      masks=masks if any(m is not None for m in masks) else [], upscale=args.upscale,
                      model=args.model, engine=args.engine, device=args.device, precision=args.precision,
                      tile=args.tile, stroke_scale=args.stroke_scale)
    method.check(request)
    plot = getattr(options, "plot", None)
    if plot:
        from brushwork.plot import check_plot_path

        check_plot_path(plot)
    loaded = method.load(request)
    named = (method.styles_for(loaded, request) or [(Path(args.model).stem, 1.0)]) if method.needs_model else styles
    outputs = _output_paths(args.photos, args.output, named)
    for out in outputs:
        _check_output_name(out)
    args.method = method.name
    from brushwork.cli.inspect import provenance_for

    prov = provenance_for(args, method.name, named,
                          model=args.model or (method.name if method.model_files(request) else None),
                          model_files=method.model_files(request),
                          settings={"size": request.size, "strength": request.strength,
                                    "preserve_color": request.preserve_color, "mask": bool(args.mask) or None,
                                    "region_masks": bool(request.masks) or None,
                                    **{k: v for k, v in dataclasses.asdict(options).items() if k != "plot"}})
    for photo, out in zip(args.photos, outputs):
        req = request
        if args.size is None and method.max_size:  # the photo's own size, capped so a phone photo fits in memory
            w, h = image_size(photo, what="photo")
            if max(w, h) > method.max_size:
                req = dataclasses.replace(request, size=method.max_size)
        bar = None
        if not method.one_pass:
            steps = getattr(options, "steps", None) or 300
            bar = _LazyBar(total=steps, desc=Path(photo).name, disable=args.quiet)
            req = dataclasses.replace(req, progress=_step_progress(bar, out, getattr(options, "snapshot_every", 0)))
        else:  # a bar only when the photo runs in tiles
            bar = _LazyBar(total=0, desc=Path(photo).name, disable=args.quiet, unit="tile")
            req = dataclasses.replace(req, tile_progress=bar.progress)
        try:
            result = method.run(loaded, photo, req)
        finally:
            if bar is not None:
                bar.close()
        save_image(result.image, out, provenance=prov, watermark=not args.no_watermark, notes=result.notes)
        if plot:
            from brushwork.plot import plot_losses

            plot_path = Path(plot)
            if len(args.photos) > 1:
                plot_path = plot_path.with_name(f"{plot_path.stem}_{Path(photo).stem}{plot_path.suffix}")
            plot_losses(result.raw.history, plot_path,
                        title=f"{Path(photo).name}: {', '.join(s for s, _ in styles)}")
        _report(args, photo, out, result.size, result.seconds, result.notes, result.info)
    return 0


def _step_progress(bar: _LazyBar, out: Path, snapshot_every: int | None) -> Any:
    """The per-step callback of an iterative method: the bar, and a snapshot every N steps."""
    from brushwork.image.io import save_image

    def progress(info: Any) -> None:
        total = getattr(info, "total", None)
        if total and bar.kwargs["total"] != total:  # tiled scales count their steps once per tile
            bar.kwargs["total"] = total
            if bar.bar is not None:
                bar.bar.total = total
        tiles = getattr(info, "tiles", 0) or 0
        extra = {"tile": f"{info.tile + 1}/{tiles}"} if tiles > 1 and getattr(info, "tile", None) is not None else {}
        bar.set_postfix(style=f"{info.losses['style']:.3g}", content=f"{info.losses['content']:.3g}",
                        size=f"{info.sizes[info.scale][0]}x{info.sizes[info.scale][1]}", **extra)
        bar.update(1)
        if snapshot_every and info.step % snapshot_every == 0:
            save_image(info.image(), out.with_name(f"{out.stem}_step{info.step:05d}{out.suffix}"))

    return progress


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


def _cmd_demo(args: argparse.Namespace) -> int:
    """The bundled photo through any registered method (its default: the fastest for any painting)."""
    from brushwork.demo import demo_photo
    from brushwork.errors import ConfigError
    from brushwork.image.io import save_image
    from brushwork.methods.registry import Request, default_method, get_method, model_method

    photo = demo_photo()
    if args.model and args.method:
        raise ConfigError("--model runs a fast feed-forward model: leave out --method")
    # a shipped model runs as its own kind (feed-forward, cyclegan)
    method = get_method(model_method(args.model)) if args.model else get_method(args.method) if args.method \
        else default_method()
    request = Request(styles=[] if args.model else [(args.style, 1.0)], options=method.Options(),
                      size=args.size or (384 if not method.one_pass else 512), model=args.model, device=args.device)
    if not method.one_pass:
        request.options = dataclasses.replace(method.Options(), steps=args.steps)
        bar = _LazyBar(total=args.steps, desc=f"demo: {args.style}", disable=args.quiet)
        request.progress = lambda info: bar.update(1)
    loaded = method.load(request)
    try:
        result = method.run(loaded, photo, request)
    finally:
        if not method.one_pass:
            bar.close()
    if args.model:
        args.style = next(iter(result.info["styles"]))
    from brushwork.cli.inspect import provenance_for

    prov = provenance_for(args, method.name, [] if args.model else [(args.style, 1.0)], model=args.model,
                          model_files=method.model_files(request), settings={"size": request.size, "demo": True})
    out = save_image(result.image, args.output, provenance=prov, watermark=not args.no_watermark)
    print(f"stylized {photo.name} with '{args.style}' ({method.name}) -> {out} ({result.size[0]}x{result.size[1]}, "
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
    title = {"title": Path(args.image).name}
    if Path(args.image).is_dir():
        from brushwork.styles import compute_collection_preset

        bar = _LazyBar(total=0, desc=f"preset {args.name}", disable=args.quiet, unit="painting")
        try:
            preset = compute_collection_preset(args.image, args.name, exclude=args.exclude, meta=title,
                                               progress=bar.progress)
        finally:
            bar.close()
        what = f"{preset.meta['paintings']} paintings"
    elif args.exclude:
        raise ConfigError("--exclude is for a folder of paintings; this is one image")
    else:
        preset, what = compute_preset(args.image, args.name, meta=title), "1 painting"
    path = save_preset(preset)
    print(f"saved style '{args.name}' ({what}) -> {path} ({path.stat().st_size / 1e3:.0f} kB); "
          f"use it as -s {args.name}")
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
               else "-s ANY_PAINTING" if m.kind == "adain"
               else "-s ANY_PAINTING --method ghiasi" if m.kind == "ghiasi" else f"--model {m.name}")
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


def _cmd_serve(args: argparse.Namespace) -> int:
    from brushwork.cli import serve

    return serve.run(args)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from brushwork.cli import inspect

    return inspect.run(args)


def _cmd_video(args: argparse.Namespace) -> int:
    from brushwork.cli import video

    return video.run(args)


_COMMANDS = {"stylize": _cmd_stylize, "demo": _cmd_demo, "styles": _cmd_styles, "preset": _cmd_preset,
             "train": _cmd_train, "models": _cmd_models, "export": _cmd_export, "video": _cmd_video,
             "batch": _cmd_batch, "inspect": _cmd_inspect, "serve": _cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input, 1 internal error, 130 interrupted)."""
    argv = list(argv) if argv is not None else sys.argv[1:]
    parser = build_parser(argv[0] if argv and argv[0] in _COMMANDS else None)
    try:
        args = parser.parse_args(argv)
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
