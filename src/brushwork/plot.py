"""Loss curves (content, style, TV per step) as a PNG, with matplotlib's headless backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from brushwork.errors import ConfigError

_FORMATS = (".png", ".pdf", ".svg", ".jpg")


def check_plot_path(path: str | Path) -> None:
    """Refuse an unsupported plot file type before any work is done."""
    if Path(path).suffix.lower() not in _FORMATS:
        raise ConfigError(f"plot file must end in one of {', '.join(_FORMATS)}: {path}")


DEFAULT_KEYS = (("total", "black"), ("style", "tab:red"), ("content", "tab:blue"), ("tv", "tab:green"),
                ("l1", "tab:purple"))


def plot_losses(history: Sequence[dict[str, float]], path: str | Path, title: str = "",
                keys: Sequence[tuple[str, str]] = DEFAULT_KEYS) -> Path:
    """Plot each loss term (``keys``: name and colour) against the step on a log scale; dashed lines mark
    scale changes."""
    check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, colour in keys:
        values = [h[key] for h in history if key in h]
        if values and any(v > 0 for v in values):
            ax.plot(steps[: len(values)], values, label=key, color=colour, linewidth=1.4)
    for prev, cur in zip(history, history[1:]):
        if cur.get("scale") != prev.get("scale"):
            ax.axvline(cur["step"], color="grey", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (relative)")
    ax.set_title(title or "brushwork losses", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
