"""One registry of stylization methods: what the CLI, batch, video and the web server ask.

A method declares its name, a one-line summary, the options only it understands (a frozen
dataclass whose fields carry their help text), how it loads (once, for many photos) and how it
stylizes one photo. Declarations are torch-free (the heavy module is imported inside ``load``),
so building the command line stays instant. The built-in methods are declared in
:mod:`brushwork.methods.builtin`; another is one file with a :func:`register` call.
(The shipped *models*, by name, are :mod:`brushwork.registry`'s.)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from brushwork.errors import ConfigError, did_you_mean

#: modules whose import registers the built-in methods (torch-free declarations)
BUILTIN_MODULES = ("brushwork.methods.builtin",)

#: Without --size, an image or video larger than this is scaled down (longest side); smaller ones keep their size.
DEFAULT_MAX_SIZE = 2048


def positive_int(text: str) -> int:
    """A whole number >= 0 (argparse type)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return v


def count(text: str) -> int:
    """A whole number >= 1 (argparse type)."""
    v = positive_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {v}")
    return v


def number(text: str) -> float:
    """Any float (argparse type), with a one-line message instead of argparse's repr."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


def option(default: Any = None, *, help: str, type: Callable[[str], Any] | None = None,
           choices: Sequence[str] | None = None, action: str | None = None, metavar: str | None = None,
           nargs: int | str | None = None, flag: str | None = None) -> Any:
    """A method option: a dataclass field whose metadata becomes its command-line flag.

    ``default`` None means "not given" (the method applies its own default), so a flag that
    belongs to one method can be told apart from one left alone.
    """
    meta = {"help": help, "type": type, "choices": tuple(choices) if choices else None, "action": action,
            "metavar": metavar, "nargs": nargs, "flag": flag}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NoOptions:
    """A method with no options of its own."""


@dataclass
class Request:
    """What every method is asked: the styles (``(name or path, weight)`` pairs), the shared
    controls, and ``options`` (the method's own :attr:`Method.Options`). ``strength`` None = the
    method's default; ``masks`` holds one region mask (or None) per style. ``engine`` "auto" lets the
    method pick the fastest (:func:`brushwork.inference.engine.resolve_engine`); ``many`` says many
    images will share this load (batch, video, a server), which can change that pick."""

    styles: list[tuple[str, float]] = field(default_factory=list)
    options: Any = field(default_factory=NoOptions)
    size: int | None = None
    strength: float | None = None
    preserve_color: str | None = None
    mask: Any = None
    masks: list[Any] = field(default_factory=list)
    upscale: bool = False
    model: str | None = None
    engine: str = "auto"
    device: str = "cpu"
    precision: str = "auto"
    many: bool = False
    progress: Callable[[Any], None] | None = None
    #: tiles of this many px (0: never; None: automatic above 2048 px or when one pass would not fit)
    tile: int | None = None
    #: strokes this many times larger: the method runs at 1/stroke_scale of the size, the photo's fine
    #: detail is brought back at full size (:mod:`brushwork.strokes`)
    stroke_scale: float | None = None
    #: ``(done, total)`` after each tile of a tiled one-pass job
    tile_progress: Callable[[int, int], None] | None = None

    def style_masks(self) -> list[Any]:
        return list(self.masks) if self.masks else [None] * len(self.styles)


@dataclass
class Result:
    """The common result: the image, seconds, ``(w, h)``, notes, what a JSON report should say
    about the run (``info``), and the method's own result object (``raw``)."""

    image: Any
    seconds: float
    size: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    raw: Any = None


class Method:
    """A stylization method. Subclasses set the class attributes and implement :meth:`load` and
    :meth:`stylize`; :func:`register` makes them known."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    aliases: ClassVar[tuple[str, ...]] = ()
    #: one pass per photo (batch, video and a synchronous web request can run it)
    one_pass: ClassVar[bool] = True
    #: takes any painting as a style (not only the styles a trained model holds)
    arbitrary: ClassVar[bool] = True
    #: among the arbitrary one-pass methods the available one with the highest rank is the default
    default_rank: ClassVar[int] = 0
    #: a trained --model is what it runs (its styles are the model's names)
    needs_model: ClassVar[bool] = False
    #: --mask-for (a style per region) and --preserve-color values it understands
    style_masks: ClassVar[bool] = False
    preserve_colors: ClassVar[tuple[str, ...]] = ("luminance",)
    #: output size without --size: a fixed size, or the photo's own capped at ``max_size``
    default_size: ClassVar[int | None] = None
    max_size: ClassVar[int | None] = None

    def available(self) -> bool:
        """Whether it can run with what is installed (e.g. a shipped model)."""
        return True

    def check(self, request: Request) -> None:
        """Refuse impossible requests in one line before anything loads."""
        if request.preserve_color is not None and request.preserve_color not in self.preserve_colors:
            raise ConfigError(f"--preserve-color {request.preserve_color} is not available with --method "
                              f"{self.name} (it takes: {', '.join(self.preserve_colors)})")
        if any(m is not None for m in request.masks) and not self.style_masks:
            raise ConfigError(f"--mask-for: not an option of --method {self.name}")

    def load(self, request: Request) -> Any:  # pragma: no cover - every method implements it
        raise NotImplementedError

    def stylize(self, loaded: Any, photo: Any, request: Request) -> Result:  # pragma: no cover
        raise NotImplementedError

    def model_files(self, request: Request) -> list[Path]:
        """The files whose content decides its output (digested by resumable batch runs)."""
        return []

    def run(self, loaded: Any, photo: Any, request: Request) -> Result:
        """:meth:`stylize` with the controls every method shares around it (``stroke_scale``): what the
        CLI, batch, video and the server call."""
        if request.stroke_scale is not None and request.stroke_scale != 1:
            from brushwork.strokes import stroke_scaled

            return stroke_scaled(self, loaded, photo, request)
        return self.stylize(loaded, photo, request)

    def given_options(self, options: Any) -> list[str]:
        """Flags of ``options`` that were set (not left at None / False / empty)."""
        return [flag_of(f) for f in dataclasses.fields(options) if getattr(options, f.name) not in (None, False, [])]


_METHODS: dict[str, Method] = {}
_ALIASES: dict[str, str] = {}
_loaded = False


def register(cls: type[Method]) -> type[Method]:
    """Make a method known by its name and aliases (a class decorator)."""
    if not dataclasses.is_dataclass(cls.Options):
        raise TypeError(f"{cls.__name__}.Options must be a dataclass")
    _METHODS[cls.name] = cls()
    for alias in cls.aliases:
        _ALIASES[alias] = cls.name
    return cls


def _ensure_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def methods() -> list[Method]:
    """Every registered method, in registration order."""
    _ensure_builtin()
    return list(_METHODS.values())


def method_names(with_aliases: bool = False) -> list[str]:
    _ensure_builtin()
    return [*_METHODS, *(_ALIASES if with_aliases else ())]


def get_method(name: str) -> Method:
    """The method called ``name`` (or an alias of it); an unknown name is one line with a suggestion."""
    _ensure_builtin()
    key = _ALIASES.get(name, name)
    if key not in _METHODS:
        raise ConfigError(f"unknown method '{name}'{did_you_mean(name, method_names(True))} "
                          f"(choose from {', '.join(method_names(True))})")
    return _METHODS[key]


def default_method() -> Method:
    """The available arbitrary-style one-pass method of highest rank, else optimization."""
    ranked = sorted((m for m in methods() if m.one_pass and m.arbitrary and m.available()),
                    key=lambda m: -m.default_rank)
    return ranked[0] if ranked else get_method("optimize")


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def option_fields(method: Method) -> list[dataclasses.Field]:
    return list(dataclasses.fields(method.Options))


def all_options() -> dict[str, tuple[dataclasses.Field, list[Method]]]:
    """Every method option by field name: its (first) declaration and the methods that take it."""
    out: dict[str, tuple[dataclasses.Field, list[Method]]] = {}
    for m in methods():
        for f in option_fields(m):
            if f.name in out:
                out[f.name][1].append(m)
            else:
                out[f.name] = (f, [m])
    return out


def options_from(method: Method, values: dict[str, Any]) -> Any:
    """``method.Options`` from a mapping (argparse's namespace, a web form) of every method's option
    values; an option of another method that was set is refused in one line."""
    table = all_options()
    own = {f.name for f in option_fields(method)}
    foreign = [name for name in table if name not in own and values.get(name) not in (None, False, [])]
    if foreign:
        owners = sorted({m.name for name in foreign for m in table[name][1]})
        flags = ", ".join(flag_of(table[name][0]) for name in foreign)
        raise ConfigError(f"{flags}: option(s) of --method {' or '.join(owners)}, not {method.name}")
    return method.Options(**{k: values[k] for k in own if k in values})


def infer_method(values: dict[str, Any], model: str | None = None) -> Method:
    """The method a request means when it names none: a trained --model's own kind; otherwise the
    default method if it takes every option given (and the ``preserve_color`` asked), else the
    best-ranked one-pass method that does, else the first method that does."""
    if model:
        return get_method(model_method(model))
    given = {name for name, (_, _) in all_options().items() if values.get(name) not in (None, False, [])}
    colour = values.get("preserve_color")
    candidates = [m for m in methods() if given <= {f.name for f in option_fields(m)} and not m.needs_model
                  and (colour is None or colour in m.preserve_colors)]
    default = default_method()
    if default in candidates or not candidates:
        return default
    # the best-ranked available one-pass method that takes them all, else the first that does (optimize)
    return sorted(candidates, key=lambda m: -m.default_rank if m.one_pass and m.arbitrary and m.available()
                  else 1)[0]


def model_method(model: str) -> str:
    """``ghiasi`` for a ghiasi model folder (or a shipped one's name), else ``feedforward``."""
    import json

    _ensure_builtin()
    path = Path(model)
    if not path.is_dir():
        from brushwork.registry import shipped_models

        match = [m for m in shipped_models() if m.name == str(model)]
        if not match:
            return "feedforward"
        path = match[0].path
    try:
        kind = json.loads((path / "config.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return "feedforward"
    return kind if kind in _METHODS and kind != "adain" else "feedforward"


def match_style(key: str, styles: Sequence[tuple[str, float]]) -> int:
    """The index of the style ``key`` names: as given to -s, its file name or stem, or a 1-based index."""
    if key.isdigit() and 1 <= int(key) <= len(styles):
        return int(key) - 1
    for i, (name, _) in enumerate(styles):
        if key in (name, Path(name).name, Path(name).stem):
            return i
    raise ConfigError(f"--mask-for names style '{key}', which is not one of the -s styles (or a 1-based index)")
