"""``brushwork batch`` on this machine: mirrored tree, bad files isolated, resume by manifest and
settings hash, atomic outputs under interruption, summary and exit codes.

A tiny random feed-forward net at 64 px keeps every run well under a second.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork.batch import MANIFEST_NAME, SUMMARY_NAME, BatchSettings, plan_batch, read_manifest, run_local
from brushwork.batch.local import PARTIAL_TAG, _output_names
from brushwork.cli.main import main
from brushwork.pipeline import StylizeOptions

ERROR_LINE = re.compile(r"^brushwork( [a-z]+)?: error: \S")
PHOTOS = ("photo_a.jpg", "photo_b.jpg", "sub/photo_c.png")  # the good photos of the `tree` fixture
OUTPUTS = ("photo_a.jpg", "photo_b.jpg", "sub/photo_c.png")  # their outputs: .jpg stays .jpg, the rest .png


def make_tree(media_files, root: Path) -> Path:
    """Three photos (one in a subfolder, one a PNG), a corrupt .jpg and a text file (pictures: tests/media.py)."""
    (root / "sub").mkdir(parents=True)
    shutil.copy(media_files.photo, root / "photo_a.jpg")
    shutil.copy(media_files.scene, root / "photo_b.jpg")
    with Image.open(media_files.portrait) as im:
        im.convert("RGB").resize((160, 120)).save(root / "sub" / "photo_c.png")
    (root / "sub" / "broken.jpg").write_bytes(media_files.photo.read_bytes()[:600])  # a truncated JPEG
    (root / "notes.txt").write_text("not a photo\n")
    return root


@pytest.fixture
def tree(media_files, tmp_path: Path) -> Path:
    return make_tree(media_files, tmp_path / "in")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def batch_args(tree: Path, out: Path, model: Path, *extra) -> list:
    return ["batch", tree, "-o", out, "--model", model, "--size", 64, *extra]


def mtimes(out: Path) -> dict[str, int]:
    return {name: (out / name).stat().st_mtime_ns for name in OUTPUTS}


def no_partials(out: Path) -> bool:
    return not [p for p in out.rglob("*") if PARTIAL_TAG in p.name or p.name.endswith(".tmp")]


def test_mirrors_the_tree_isolates_the_bad_file_and_writes_a_summary(capsys, tree, tmp_path, tiny_cin):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, *batch_args(tree, out, tiny_cin, "--json"))
    assert code == 3, stderr  # some failed, the rest done
    summary = json.loads(stdout)
    assert summary == json.loads((out / SUMMARY_NAME).read_text())
    assert (summary["done"], summary["skipped"], summary["failed"], summary["ignored"]) == (3, 0, 1, 1)
    assert summary["failures"][0]["input"] == "sub/broken.jpg"
    assert "corrupt or truncated" in summary["failures"][0]["reason"]
    assert summary["ignored_files"] == [{"input": "notes.txt", "reason": "not a photo file (.txt)"}]
    assert summary["settings"]["size"] == 64 and summary["settings"]["method"] == "feedforward"
    assert not summary["interrupted"] and summary["seconds"] > 0
    assert "brushwork: failed sub/broken.jpg: photo is corrupt or truncated" in stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted([*OUTPUTS, MANIFEST_NAME, SUMMARY_NAME])
    for name in OUTPUTS:
        with Image.open(out / name) as im:
            assert max(im.size) == 64 and im.format == ("PNG" if name.endswith(".png") else "JPEG")
    assert sorted(read_manifest(out)) == sorted(PHOTOS)


def test_rerun_skips_done_files_and_settings_changes_redo_them(capsys, tree, tmp_path, tiny_cin):
    out = tmp_path / "out"
    assert run_cli(capsys, *batch_args(tree, out, tiny_cin))[0] == 3
    before = mtimes(out)
    with Image.open(out / "photo_a.jpg") as im:
        first = np.asarray(im.convert("RGB"), dtype=np.int16)

    code, stdout, _ = run_cli(capsys, *batch_args(tree, out, tiny_cin))
    assert code == 3 and stdout.startswith("batch: 0 done, 3 skipped, 1 failed, 1 ignored")
    assert mtimes(out) == before  # nothing rewritten

    (tree / "sub" / "broken.jpg").unlink()
    code, stdout, _ = run_cli(capsys, *batch_args(tree, out, tiny_cin))
    assert code == 0 and stdout.startswith("batch: 0 done, 3 skipped, 0 failed")

    code, stdout, _ = run_cli(capsys, *batch_args(tree, out, tiny_cin, "--strength", 0.5, "--json"))
    summary = json.loads(stdout)
    assert code == 0 and (summary["done"], summary["skipped"]) == (3, 0)
    after = mtimes(out)
    assert all(after[n] != before[n] for n in OUTPUTS)
    with Image.open(out / "photo_a.jpg") as im:
        assert np.abs(np.asarray(im.convert("RGB"), dtype=np.int16) - first).mean() > 1  # really redone

    assert run_cli(capsys, *batch_args(tree, out, tiny_cin, "--strength", 0.5))[1].startswith("batch: 0 done, 3")
    assert run_cli(capsys, *batch_args(tree, out, tiny_cin, "--strength", 0.5, "--overwrite"))[1].startswith(
        "batch: 3 done, 0 skipped")
    Image.open(tree / "photo_b.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tree / "photo_b.jpg")
    assert run_cli(capsys, *batch_args(tree, out, tiny_cin, "--strength", 0.5))[1].startswith(
        "batch: 1 done, 2 skipped")  # an edited photo is redone
    assert len((out / MANIFEST_NAME).read_text().splitlines()) == 3  # compacted: one line per photo


def test_interrupted_run_leaves_whole_files_and_the_next_run_finishes(tree, tmp_path, tiny_cin):
    out = tmp_path / "out"
    settings = BatchSettings(StylizeOptions(model=str(tiny_cin), size=64))

    def stop_after_two(result, finished, total):
        if finished == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_local(plan_batch(tree, out, settings), progress=stop_after_two)
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["interrupted"] and summary["done"] + summary["failed"] == 2
    assert no_partials(out)
    done = sorted(read_manifest(out))
    for name in done:
        with Image.open(out / name) as im:
            im.load()  # whole, decodable files

    plan = plan_batch(tree, out, settings)
    assert sorted(i.input for i in plan.skipped) == done
    summary = run_local(plan)
    assert summary.done + len(done) == 3 and summary.skipped == len(done) and not summary.interrupted
    assert all((out / n).is_file() for n in OUTPUTS)


def test_a_kill_during_the_write_leaves_no_half_written_image(tree, tmp_path, tiny_cin, monkeypatch):
    import brushwork.image.io as io

    out = tmp_path / "out"
    settings = BatchSettings(StylizeOptions(model=str(tiny_cin), size=64))
    real_save = io.save_image
    calls = []

    def dying_save(img, path, quality=95, **marks):
        calls.append(path)
        if len(calls) == 2:  # the second file: half of it on disk, then the process "dies"
            real_save(img, path, quality, **marks)
            Path(path).write_bytes(Path(path).read_bytes()[:100])
            raise KeyboardInterrupt
        return real_save(img, path, quality, **marks)

    monkeypatch.setattr(io, "save_image", dying_save)
    with pytest.raises(KeyboardInterrupt):
        run_local(plan_batch(tree, out, settings))
    assert PARTIAL_TAG in Path(calls[1]).name  # it was writing a temporary, not the output
    assert no_partials(out)
    assert len([n for n in OUTPUTS if (out / n).exists()]) == 1

    monkeypatch.setattr(io, "save_image", real_save)
    stale = out / f".photo_b.1234abcd{PARTIAL_TAG}.jpg"  # what a SIGKILL mid-write would leave
    stale.write_bytes(b"half")
    summary = run_local(plan_batch(tree, out, settings))
    assert (summary.done, summary.skipped, summary.failed) == (2, 1, 1)
    assert not stale.exists() and no_partials(out)


@pytest.mark.parametrize("case, expected", [
    ("missing_input", "input folder not found"),
    ("no_photos", "no photos in"),
    ("unknown_model", "unknown model 'no_such_model'"),
    ("unknown_style", "did you mean 'waves'"),
    ("no_style", "give a trained --model or at least one painting with -s"),
    ("workers_without_ray", "--workers and --cpus-per-worker go with --ray"),
    ("output_is_input", "the output folder is the input folder"),
])
def test_usage_errors_are_one_line_and_exit_2(capsys, tree, tmp_path, tiny_cin, case, expected):
    out = tmp_path / "out"
    args = {
        "missing_input": ["batch", tmp_path / "nope", "-o", out, "--model", tiny_cin],
        "no_photos": ["batch", tree / "empty", "-o", out, "--model", tiny_cin],
        "unknown_model": ["batch", tree, "-o", out, "--model", "no_such_model"],
        "unknown_style": ["batch", tree, "-o", out, "--model", tiny_cin, "-s", "wave"],
        "no_style": ["batch", tree, "-o", out],
        "workers_without_ray": ["batch", tree, "-o", out, "--model", tiny_cin, "--workers", 2],
        "output_is_input": ["batch", tree, "-o", tree, "--model", tiny_cin],
    }[case]
    (tree / "empty").mkdir()
    (tree / "empty" / "readme.txt").write_text("x")
    code, _, stderr = run_cli(capsys, *args, "-q")
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and ERROR_LINE.match(lines[0]) and expected in lines[0], stderr
    assert not out.exists()  # nothing started


def test_output_names_keep_jpg_and_never_collide():
    rels = [Path("a.png"), Path("a.tif"), Path("b.JPG"), Path("s/c.webp")]
    assert _output_names(rels, None) == ["a.png", "a.tif.png", "b.JPG", "s/c.png"]
    assert _output_names(rels, "jpg") == ["a.png.jpg", "a.tif.jpg", "b.jpg", "s/c.jpg"]  # no a.jpg to prefer
    assert _output_names([Path("x.jpg"), Path("x.png")], "png") == ["x.jpg.png", "x.png"]


def test_output_folder_inside_the_input_is_not_walked(capsys, tree, tiny_cin):
    out = tree / "styled"
    assert run_cli(capsys, *batch_args(tree, out, tiny_cin))[0] == 3
    code, stdout, _ = run_cli(capsys, *batch_args(tree, out, tiny_cin))
    assert code == 3 and stdout.startswith("batch: 0 done, 3 skipped, 1 failed, 1 ignored")
