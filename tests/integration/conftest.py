"""The pictures of the quality checks: real photos and paintings from the shared data folder when it is
there, otherwise matplotlib's sample photo and the generated paintings of tests/media.py, so the checks
still measure real style transfer on a fresh clone (``BRUSHWORK_TEST_DATA=none`` forces the fallback)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: key: (the shared data's file, the fallback's Media field)
ARTWORKS = {
    "photo": ("content/tubingen.jpg", "photo"),  # 1024x768 / 512x384: both 96x72 at SIZE
    "photo2": ("content/golden_gate.jpg", "photo"),
    "starry": ("style/starry_night.jpg", "painting"),  # both 1.6:1 (48x30 at 48 px)
    "scream": ("style/the_scream.jpg", "painting"),
    "comp": ("style/composition_vii.jpg", "painting2"),
    "candy": ("style/candy.jpg", "square_painting"),  # square
    "wheat": ("masks/wheat_field_cypresses.jpg", "field"),
    "sky": ("masks/wheat_field_cypresses_sky.png", "field_sky"),
    "nosky": ("masks/wheat_field_cypresses_nosky.png", "field_ground"),
}


@pytest.fixture(scope="session")
def artworks(shared_data: Path | None, media_files) -> dict[str, Path]:
    """Paths by role (see ARTWORKS), plus ``"real"``: True with the shared data, False with the fallback."""
    if shared_data is None:
        return {"real": False, **{k: getattr(media_files, field) for k, (_, field) in ARTWORKS.items()}}
    found = {k: shared_data / rel for k, (rel, _) in ARTWORKS.items()}
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:  # a data folder without its classic images is a broken checkout, not a reason to skip
        pytest.fail(f"the shared data folder lacks {', '.join(missing)} (BRUSHWORK_TEST_DATA=none uses the fallback)")
    return {"real": True, **found}
