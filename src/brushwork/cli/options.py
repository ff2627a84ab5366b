"""Argument types and the one-pass stylizer options that `batch` and `video` share.

Kept free of torch imports so building the parser stays instant.
"""

from __future__ import annotations

import argparse
from typing import Any

from brushwork.inference.engine import ENGINES
from brushwork.methods.registry import DEFAULT_MAX_SIZE, count, number, positive_int

ENGINE_HELP = ("auto (default): the fastest here, onnxruntime INT8 where the model ships it (no torch import), "
               "else PyTorch; torch; onnx: onnxruntime fp32 (exported with torch and cached on first use); int8: "
               "the shipped INT8 export")


def parse_style(text: str) -> tuple[str, float]:
    """'a.jpg:0.7' -> ('a.jpg', 0.7); a colon not followed by a number belongs to the path."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return text, 1.0


def parse_model_styles(items: list[str]) -> list[tuple[str, float]]:
    """Style names of a trained model: '-s a:0.5 -s b:0.5' or '-s a:0.5,b:0.5' (names hold no commas)."""
    return [parse_style(part.strip()) for item in items for part in item.split(",") if part.strip()]


def stroke_scale(text: str) -> float:
    """A stroke scale 1..16 (argparse type)."""
    from brushwork.strokes import MAX_STROKE_SCALE

    v = number(text)
    if not 1 <= v <= MAX_STROKE_SCALE:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to {MAX_STROKE_SCALE:g}, got {text}")
    return v


def tile_size(text: str) -> int:
    """A tile size in px, or 0 for never (argparse type)."""
    from brushwork.tiling import MIN_TILE

    v = positive_int(text)
    if 0 < v < MIN_TILE:
        raise argparse.ArgumentTypeError(f"tiles must be at least {MIN_TILE} px (or 0: never tile), got {v}")
    return v


def add_tiling_options(p: argparse.ArgumentParser) -> None:
    """--tile and --stroke-scale: any size without seams, strokes that keep their size in a print."""
    p.add_argument("--tile", type=tile_size, default=None, metavar="PX",
                   help="run in tiles of PX px that share the whole picture's statistics (no seams; memory stays "
                        "flat); default: automatic above 2048 px or when one pass would not fit; 0: never")
    p.add_argument("--stroke-scale", type=stroke_scale, default=None, metavar="F",
                   help="paint strokes F times larger (1..16): the method runs at 1/F of the size and the photo's "
                        "fine detail is brought back at full size; e.g. 4 at 8000 px keeps a 2000 px picture's "
                        "strokes")


def add_stylizer_options(p: argparse.ArgumentParser, what: str, preserve: tuple[str, ...]) -> None:
    """--model / -s / --size / --strength / colour / AdaIN / engine options of a one-pass command over ``what``."""
    from brushwork.methods.registry import methods

    one_pass = [m for m in methods() if m.one_pass]
    p.add_argument("--method", default=None, choices=[m.name for m in one_pass],
                   help="; ".join(f"{m.name}: {m.summary}" for m in one_pass) + " (default: --model's own, else the "
                        "fastest installed method for any painting)")
    p.add_argument("--model", metavar="NAME",
                   help="a fast trained model: a shipped model or style name (see `brushwork models`), a "
                        "trained folder (johnson, cin, stylebank or ghiasi), or an exported .onnx file")
    p.add_argument("-s", "--style", action="append", default=[], metavar="STYLE[:WEIGHT]",
                   help="without --model: a painting or preset for AdaIN (repeat to blend); with --model: its "
                        "style names (a:0.5,b:0.5)")
    p.add_argument("--size", type=count, default=None, metavar="PX",
                   help=f"longest side of the {what} in px (default: their own, at most {DEFAULT_MAX_SIZE})")
    p.add_argument("--strength", type=number, default=1.0, help="style strength 0..1 (0 = unchanged; default 1)")
    p.add_argument("--preserve-color", choices=list(preserve), default=None,
                   help=f"keep the {what}' colours" + (" (match: AdaIN only)" if "match" in preserve else ""))
    p.add_argument("--decoder", metavar="DIR", help="AdaIN: a trained decoder folder (default: the shipped one)")
    p.add_argument("--style-size", type=count, default=None, metavar="PX",
                   help="AdaIN: the painting's longest side when encoded (default 512)")
    p.add_argument("--blend", choices=["linear", "slerp"], default=None,
                   help="ghiasi: how several paintings mix (linear mean of their embeddings, or slerp)")
    p.add_argument("--palette", type=number, default=None, metavar="F",
                   help="ghiasi: move the colours towards the painting's, 0..1 (default 0.15; 0 = the net's own)")
    p.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 where the hardware is fast at it")
    add_tiling_options(p)


def stylize_options(args: argparse.Namespace, size: int | None) -> Any:
    """The :class:`~brushwork.pipeline.StylizeOptions` the options above describe."""
    from brushwork.pipeline import StylizeOptions

    arbitrary = args.method not in (None, "feedforward") or not args.model
    styles = [parse_style(s) for s in args.style] if arbitrary else parse_model_styles(args.style)
    return StylizeOptions(model=args.model, styles=styles, size=size, strength=args.strength,
                          preserve_color=args.preserve_color, engine=args.engine, device=args.device,
                          precision=args.precision, decoder=args.decoder, style_size=args.style_size,
                          method=args.method, blend=args.blend, palette=args.palette, tile=args.tile,
                          stroke_scale=args.stroke_scale)
