"""``brushwork batch --ray``: the same outputs, manifest and summary as the local run, on a private
local Ray with 2 CPUs (started once, by the one test that needs it, and shut down after); plus the
one-line errors for an address nobody answers at and for a missing ray extra.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork.batch import MANIFEST_NAME, SUMMARY_NAME, read_manifest
from brushwork.cli.main import main

ERROR_LINE = re.compile(r"^brushwork( [a-z]+)?: error: \S")


@pytest.fixture
def ray_tree(media_files, tmp_path: Path) -> Path:
    from test_batch_local import make_tree

    return make_tree(media_files, tmp_path / "in")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and ERROR_LINE.match(lines[0]), err
    return lines[0]


def outputs(folder: Path) -> dict[str, np.ndarray]:
    found = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in (MANIFEST_NAME, SUMMARY_NAME):
            with Image.open(p) as im:
                found[p.relative_to(folder).as_posix()] = np.asarray(im.convert("RGB"), dtype=np.int16)
    return found


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, about its context settings
def test_ray_run_matches_the_local_one_and_resumes_from_it(capsys, ray_tree, tmp_path, tiny_cin):
    ray = pytest.importorskip("ray")
    common = ["batch", ray_tree, "--model", tiny_cin, "-s", "waves:0.3", "-s", "stars:0.7", "--size", 64,
              "--precision", "fp32", "--json"]
    code, out, err = run_cli(capsys, *common, "-o", tmp_path / "local")
    assert code == 3, err
    local = json.loads(out)

    try:
        code, out, err = run_cli(capsys, *common, "-o", tmp_path / "ray", "--ray", "local:2", "--workers", 2)
    finally:
        if ray.is_initialized():  # the run shuts its own Ray down; this only guards a failed test
            ray.shutdown()
    assert code == 3, err
    assert not ray.is_initialized()
    remote = json.loads(out)
    assert remote["runner"] == "ray" and remote["workers"] == 2
    for key in ("done", "skipped", "failed", "ignored", "failures", "ignored_files", "settings_hash"):
        assert remote[key] == local[key], key
    assert "brushwork: failed sub/broken.jpg" in err
    a, b = outputs(tmp_path / "local"), outputs(tmp_path / "ray")
    assert sorted(a) == sorted(b) == ["photo_a.jpg", "photo_b.jpg", "sub/photo_c.png"]
    for name in a:
        assert np.array_equal(a[name], b[name]), name  # same model, same threads (1): the same pixels
    assert read_manifest(tmp_path / "local").keys() == read_manifest(tmp_path / "ray").keys()

    # Nothing left to do (the failed file, retried by every run, removed): no Ray is started and no file is
    # touched; a local run's outputs count as done for a Ray run too.
    (ray_tree / "sub" / "broken.jpg").unlink()
    for folder in ("ray", "local"):
        before = {p: p.stat().st_mtime_ns for p in (tmp_path / folder).rglob("photo_*")}
        t0 = time.perf_counter()
        code, out, err = run_cli(capsys, *common, "-o", tmp_path / folder, "--ray", "local:2")
        assert code == 0 and time.perf_counter() - t0 < 5, err
        summary = json.loads(out)
        assert (summary["done"], summary["skipped"], summary["failed"]) == (0, 3, 0)
        assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / folder).rglob("photo_*")}
        assert not ray.is_initialized()


def test_an_address_nobody_answers_at_is_one_line_and_quick(capsys, ray_tree, tmp_path, tiny_cin):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    code, _, err = run_cli(capsys, "batch", ray_tree, "-o", tmp_path / "out", "--model", tiny_cin, "-q",
                           "--size", 64, "--ray", f"127.0.0.1:{port}")
    line = one_error_line(code, err)
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in line
    assert time.perf_counter() - t0 < 15
    assert not (tmp_path / "out").exists()


def test_without_the_ray_extra_it_says_how_to_install_it(capsys, ray_tree, tmp_path, tiny_cin, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, _, err = run_cli(capsys, "batch", ray_tree, "-o", tmp_path / "out", "--model", tiny_cin, "-q",
                           "--ray", "auto")
    assert "pip install 'brushwork[ray]'" in one_error_line(code, err)
