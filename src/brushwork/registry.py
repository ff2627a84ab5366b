"""The trained models shipped inside the package, found by name.

Every folder under ``brushwork/models`` is one trained net in the shared folder format
(:mod:`brushwork.pretrained`) with a ``MODEL.json`` beside it (checksum, training command,
data). Users name a model by its folder (``cin``) or, for feed-forward models, by one of
the styles it holds (``starry_night``), so ``--model starry_night`` needs no knowledge of
which net learned that painting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from brushwork.errors import ConfigError, did_you_mean

FEEDFORWARD_KINDS = ("johnson", "cin", "stylebank")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str
    path: Path
    styles: tuple[str, ...]
    bytes: int
    steps: int | None  # style-training steps
    distill_steps: int | None = None  # steps it was then distilled for (``brushwork train distill``), if it was


def models_dir() -> Path:
    return Path(__file__).resolve().parent / "models"


def shipped_models() -> list[ModelInfo]:
    """The installed models, by name; a folder without a readable config is skipped, not fatal."""
    found = []
    root = models_dir()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        try:
            cfg = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        weights = folder / "model.safetensors"
        if not isinstance(cfg, dict) or not weights.is_file():
            continue
        try:
            card = json.loads((folder / "MODEL.json").read_text())
            steps, distill_steps = card.get("steps"), card.get("distill_steps")
        except (OSError, ValueError, AttributeError):
            steps = distill_steps = None
        styles = tuple(cfg.get("style_names") or ())
        found.append(ModelInfo(folder.name, str(cfg.get("kind")), folder, styles, weights.stat().st_size, steps,
                               distill_steps))
    return found


def feedforward_styles() -> dict[str, ModelInfo]:
    """Every style a shipped feed-forward model holds -> that model (the first model wins a name clash)."""
    out: dict[str, ModelInfo] = {}
    for info in shipped_models():
        if info.kind in FEEDFORWARD_KINDS:
            for style in info.styles:
                out.setdefault(style, info)
    return out


def resolve_model(name: str | Path, kind: str | None = None) -> tuple[Path, str | None]:
    """A model folder for ``name`` and the style it implies (None when the name is a whole model).

    ``name`` is a folder path (used as is), a shipped model's name, or a style of a shipped
    feed-forward model. ``kind`` (e.g. ``"cin"``) restricts shipped models to that kind.
    """
    path = Path(name)
    if path.is_dir():
        return path, None
    text = str(name)
    models = [m for m in shipped_models() if kind is None or m.kind == kind]
    for m in models:
        if m.name == text and m.kind in FEEDFORWARD_KINDS:
            return m.path, None
    styles = {s: m for s, m in feedforward_styles().items() if kind is None or m.kind == kind}
    if text in styles:
        return styles[text].path, text
    if any(sep in text for sep in ("/", "\\")) or path.suffix:
        raise ConfigError(f"model folder not found: {text}")
    choices = sorted(styles) + [m.name for m in models if m.kind in FEEDFORWARD_KINDS]
    if not choices:
        raise ConfigError(f"unknown model '{text}': no feed-forward model is installed (train one: brushwork train)")
    raise ConfigError(f"unknown model '{text}'{did_you_mean(text, choices)} (see: brushwork models)")
