"""What the web server asks of the library: the styles, the methods and their controls (all from the
registries, none named here), turning a form into a registry ``Request``, and models loaded once.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from brushwork.methods.registry import (
    Method,
    Request,
    count,
    flag_of,
    get_method,
    methods,
    number,
    option_fields,
    options_from,
    positive_int,
)
from brushwork.web.uploads import WebError

#: method options that write files (a plot, snapshots): never taken from a web form
FILE_OPTIONS = frozenset({"plot", "snapshot_every"})
_TYPES = {int: "int", positive_int: "int", count: "int", number: "float", float: "float"}
_TRUE = ("1", "true", "on", "yes")


def _option_kind(f: dataclasses.Field) -> str | None:
    """How a web form gives this option: a choice, a number, a switch; None = not on the web (paths,
    lists, free text: no client string becomes a file name or reaches a parser it was not meant for)."""
    meta = f.metadata
    if f.name in FILE_OPTIONS or meta.get("nargs") or meta.get("action") == "append":
        return None
    if meta.get("action") == "store_true":
        return "bool"
    if meta.get("choices"):
        return "choice"
    return _TYPES.get(meta.get("type"))


def web_options(method: Method) -> list[dataclasses.Field]:
    return [f for f in option_fields(method) if _option_kind(f)]


def describe_methods() -> list[dict[str, Any]]:
    """``GET /api/methods``: every registered method with the controls a page can show for it."""
    out = []
    for m in methods():
        out.append({
            "name": m.name, "aliases": list(m.aliases), "summary": m.summary, "one_pass": m.one_pass,
            "arbitrary": m.arbitrary, "needs_model": m.needs_model, "available": m.available(),
            "style_masks": m.style_masks, "preserve_colors": list(m.preserve_colors),
            "default_size": m.default_size, "max_size": m.max_size,
            "options": [{"name": f.name, "flag": flag_of(f), "kind": _option_kind(f), "help": f.metadata["help"],
                         "choices": list(f.metadata["choices"] or ()), "default": f.default if f.default is not
                         dataclasses.MISSING else None} for f in web_options(m)],
        })
    return out


@dataclass(frozen=True)
class StyleEntry:
    name: str
    title: str
    artist: str
    license: str
    model: str | None  # the shipped fast model that holds it (one pass, fastest), if any
    preset: bool  # its statistics ship, so the arbitrary-style methods take it by name


def style_catalogue() -> dict[str, StyleEntry]:
    """The built-in styles: the shipped fast models' styles, then the other presets."""
    from brushwork.registry import feedforward_styles
    from brushwork.styles import preset_info

    presets = {row["name"]: row for row in preset_info()}
    fast = feedforward_styles()
    out: dict[str, StyleEntry] = {}
    for name in [*fast, *(n for n in presets if n not in fast)]:
        row = presets.get(name, {})
        out[name] = StyleEntry(name, row.get("title") or name.replace("_", " ").title(), row.get("artist", ""),
                               row.get("license", ""), fast[name].name if name in fast else None, name in presets)
    return out


@dataclass
class Form:
    """A decoded request: text fields (each name may repeat) and decoded images."""

    fields: dict[str, list[str]]
    photo: Image.Image
    paintings: list[Image.Image]
    mask: Image.Image | None

    def one(self, name: str) -> str | None:
        values = self.fields.get(name) or []
        if len(values) > 1:
            raise WebError(400, f"field '{name}' given {len(values)} times (once at most)")
        return values[0].strip() if values and values[0].strip() != "" else None


#: form fields every method shares; a method's own options are the rest
COMMON_FIELDS = frozenset({"style", "painting_weight", "strength", "size", "method", "preserve_color", "engine",
                           "format"})
#: "auto" is the registry's own choice (INT8 on onnxruntime where a model ships one, torch bf16 on CPUs
#: native at it); "onnx" is left out: it exports and caches a model on first use
ENGINES = ("auto", "torch", "int8")


def _float(form: Form, name: str, lo: float, hi: float) -> float | None:
    text = form.one(name)
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        raise WebError(400, f"{name} must be a number, got '{text[:40]}'") from None
    if not lo <= v <= hi:  # also refuses nan
        raise WebError(400, f"{name} must be between {lo:g} and {hi:g}, got {text[:40]}")
    return v


def _styles(form: Form, catalogue: dict[str, StyleEntry]) -> list[tuple[Any, float]]:
    """Built-in names (``name`` or ``name:weight``, checked against the catalogue so no client string is ever
    read as a file) and uploaded paintings with their ``painting_weight``."""
    from brushwork.errors import did_you_mean

    styles: list[tuple[Any, float]] = []
    for text in form.fields.get("style", []):
        name, _, weight = text.strip().partition(":")
        if name not in catalogue:
            raise WebError(400, f"unknown style '{name[:60]}'{did_you_mean(name, list(catalogue))} "
                                "(GET /api/styles lists them)")
        styles.append((name, _weight(weight or "1", name)))
    weights = form.fields.get("painting_weight", [])
    if len(weights) > len(form.paintings):
        raise WebError(400, f"{len(weights)} painting_weight field(s) for {len(form.paintings)} painting(s)")
    for i, img in enumerate(form.paintings):
        styles.append((img, _weight(weights[i] if i < len(weights) else "1", f"painting {i + 1}")))
    if not styles:
        raise WebError(400, "give a style: 'style' (a built-in name, see GET /api/styles) or a 'painting' file")
    if len(styles) > 4:
        raise WebError(400, f"{len(styles)} styles: at most 4 blend")
    if sum(w for _, w in styles) <= 0:
        raise WebError(400, "style weights sum to 0: give one a positive weight")
    return styles


def _weight(text: str, what: str) -> float:
    try:
        w = float(text)
    except ValueError:
        raise WebError(400, f"weight of {what} must be a number, got '{text[:40]}'") from None
    if not 0 <= w <= 1e6:
        raise WebError(400, f"weight of {what} must be >= 0, got {text[:40]}")
    return w


def _option_value(f: dataclasses.Field, text: str) -> Any:
    kind, meta = _option_kind(f), f.metadata
    if kind == "bool":
        return text.lower() in _TRUE
    if kind == "choice":
        if text not in meta["choices"]:
            raise WebError(400, f"{f.name} must be one of {', '.join(meta['choices'])}, got '{text[:40]}'")
        return text
    try:
        return meta["type"](text)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        raise WebError(400, f"{f.name}: {exc}") from None


def build_request(form: Form, catalogue: dict[str, StyleEntry], *, max_size: int,
                  max_steps: int) -> tuple[Method, Request]:
    """The method and registry request a form asks for, every value checked (400 in one line)."""
    from brushwork.errors import BrushworkError

    styles = _styles(form, catalogue)
    names = [s for s, _ in styles if isinstance(s, str)]
    models = {catalogue[n].model for n in names}
    method_name = form.one("method")
    try:
        if method_name is None:  # built-in styles of one fast model: its net; any painting: the default method
            from brushwork.methods.registry import default_method

            fast = not form.paintings and len(models) == 1 and None not in models
            method = get_method("feedforward") if fast else default_method()
        else:
            method = get_method(method_name)
    except BrushworkError as exc:
        raise WebError(400, str(exc)) from None
    model = None
    if method.needs_model:
        if form.paintings or None in models or len(models) != 1:
            raise WebError(400, f"method {method.name} runs a trained net: pick built-in styles of one model "
                                "(no painting upload)")
        model = models.pop()
    else:
        missing = [n for n in names if not catalogue[n].preset]
        if missing:
            raise WebError(400, f"style '{missing[0]}' has no preset for method {method.name}: use the fast net")
    own = {f.name: f for f in web_options(method)}
    values: dict[str, Any] = {}
    for key in form.fields:
        if key in COMMON_FIELDS:
            continue
        f = own.get(key)
        if f is None:
            raise WebError(400, f"unknown field '{key[:40]}' for method {method.name}"
                                f"{' (it takes: ' + ', '.join(own) + ')' if own else ''}")
        text = form.one(key)
        if text is not None:
            values[key] = _option_value(f, text)
    steps = values.get("steps")
    if "steps" in own and steps is not None and steps > max_steps:
        raise WebError(400, f"steps must be at most {max_steps} on this server, got {steps}")
    if "steps" in own and steps is None:
        values["steps"] = min(max_steps, 300)
    size_f = _float(form, "size", 32, max_size)
    size = int(size_f) if size_f is not None else None
    if size is None:
        size = method.default_size or min(max(form.photo.size), method.max_size or max_size, max_size)
    engine = form.one("engine") or "auto"
    if engine not in ENGINES:
        raise WebError(400, f"engine must be one of {', '.join(ENGINES)}, got '{engine[:40]}'")
    preserve = form.one("preserve_color")
    try:
        options = options_from(method, values)
        request = Request(styles=styles, options=options, size=size, strength=_float(form, "strength", 0, 1),
                          preserve_color=preserve, mask=form.mask, model=model, engine=engine,
                          upscale=False, many=True)  # a server: one load serves many photos
        method.check(request)
    except BrushworkError as exc:
        raise WebError(400, str(exc).replace("--", "")) from None
    return method, request


class Models:
    """Loaded methods kept for the server's life (a model is loaded once, not per request); a few at most."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._loaded: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, method: Method, request: Request) -> Any:
        key = (method.name, request.model, request.engine, request.device, request.precision)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        loaded = method.load(request)
        with self._lock:
            self._loaded[key] = loaded
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
        return loaded


def browser_model() -> dict[str, Any] | None:
    """The shipped fast model the page runs in the browser: its INT8 ONNX file and what its graph takes."""
    from brushwork.pipeline import INT8_FILE
    from brushwork.registry import shipped_models

    for m in shipped_models():
        path = m.path / INT8_FILE
        if m.kind == "cin" and path.is_file():
            return {"name": m.name, "path": path, "style_names": list(m.styles), "pad_multiple": 4,
                    "inputs": ["image", "style_weights"], "output": "stylized", "bytes": path.stat().st_size}
    return None


def runtime_dir(static: Path) -> Path | None:
    """Where ``npm ci`` put onnxruntime-web's files (None: not installed)."""
    folder = static / "vendor" / "ort"
    return folder if (folder / "ort.wasm.min.mjs").is_file() else None
