"""User-facing errors.

Every error a user can cause (bad image, unknown style, impossible size) is a
:class:`BrushworkError` whose message is one self-contained line; the CLI prints
it and exits 2 instead of showing a traceback.
"""

from __future__ import annotations


class BrushworkError(Exception):
    """An error caused by the input or the environment, with a one-line message."""


class ImageError(BrushworkError):
    """An image (or mask) could not be read, decoded or written."""


class ConfigError(BrushworkError):
    """Options that cannot work together or are out of range."""


class ResourceError(BrushworkError):
    """The job would not fit in this machine's memory."""


class ModelError(BrushworkError):
    """Weights that are missing, corrupt or of another version."""


class OptimizationError(BrushworkError):
    """The optimization diverged (NaN or inf loss)."""


def did_you_mean(name: str, choices: list[str]) -> str:
    """A ' (did you mean X?)' suffix for an unknown name, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class TrainingStopped(KeyboardInterrupt):
    """A training run stopped by a signal after saving its checkpoint: rerunning the command resumes it.

    A KeyboardInterrupt, so the CLI's interrupted path (exit 130) handles it; its message says where it stopped.
    """
