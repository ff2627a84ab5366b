"""Sample inputs that installed dependencies ship, so a first run needs no files."""

from __future__ import annotations

from pathlib import Path

from brushwork.errors import ImageError


def demo_photo() -> Path:
    """Grace Hopper's portrait (US Navy photo, public domain) from matplotlib's sample data."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise ImageError(f"matplotlib's sample photo is missing ({path}); pass your own photo to `brushwork stylize`")
    return path
