"""The on-disk painting cache: same bytes hit, edited bytes miss, a torn entry is recomputed, never unpickled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brushwork.inference import painting_cache


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BRUSHWORK_NO_PAINTING_CACHE", raising=False)
    return tmp_path


def _counting(value: float) -> tuple[list[int], object]:
    calls: list[int] = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"statistics": np.full((1, 4), value, np.float32)}

    return calls, compute


def test_same_bytes_hit_even_under_another_name(home: Path) -> None:
    a = home / "a.jpg"
    a.write_bytes(b"painting one")
    calls, compute = _counting(1.0)
    first = painting_cache.cached(a, "t1", compute)
    b = home / "copy.jpg"
    b.write_bytes(a.read_bytes())
    again = painting_cache.cached(str(b), "t1", compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["statistics"], again["statistics"])
    painting_cache.cached(a, "t2", compute)  # another encoder or size: its own entry
    assert len(calls) == 2


def _painted_once(home: Path, value: float = 1.0) -> tuple[Path, list[int], object]:
    """A painting file whose entry has just been computed (once) under tag "t"."""
    a = home / "a.jpg"
    a.write_bytes(b"painting one")
    calls, compute = _counting(value)
    painting_cache.cached(a, "t", compute)
    return a, calls, compute


def test_edited_painting_misses(home: Path) -> None:
    a, calls, compute = _painted_once(home)
    a.write_bytes(b"painting two, edited")
    painting_cache.cached(a, "t", compute)
    assert len(calls) == 2


def test_torn_or_pickled_entry_is_recomputed(home: Path) -> None:
    a, calls, compute = _painted_once(home, 2.0)
    (entry,) = painting_cache.cache_folder().glob("*.npz")
    np.save(entry.with_suffix(""), np.array([{"x": 1}], dtype=object), allow_pickle=True)
    entry.with_suffix(".npy").replace(entry)  # an object array: np.load must refuse it, not run it
    out = painting_cache.cached(a, "t", compute)
    assert len(calls) == 2 and float(out["statistics"][0, 0]) == 2.0
    entry.write_bytes(b"not a zip")
    painting_cache.cached(a, "t", compute)
    assert len(calls) == 3


def test_off_switch_and_non_files(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = home / "a.jpg"
    a.write_bytes(b"painting")
    calls, compute = _counting(1.0)
    painting_cache.cached(np.zeros((2, 2, 3)), "t", compute)
    painting_cache.cached(a, "t", compute)
    monkeypatch.setenv("BRUSHWORK_NO_PAINTING_CACHE", "1")
    painting_cache.cached(a, "t", compute)
    assert len(calls) == 3
    assert len(list(painting_cache.cache_folder().glob("*.npz"))) == 1
