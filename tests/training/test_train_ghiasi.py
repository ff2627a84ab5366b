"""Training the style-prediction net on generated pictures: a real tiny run, resume with the bank
reused, a warm start from a CIN net, augmentation, refusals in one line."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from media import image_folder
from PIL import Image

from brushwork.cli.main import main
from brushwork.errors import ConfigError
from brushwork.methods.feedforward import TransformerConfig, TransformerNet
from brushwork.methods.ghiasi import GhiasiNet
from brushwork.training.ghiasi import GhiasiTrainConfig, augment_painting, model_from_checkpoint, train_ghiasi

TINY = {"widths": (4, 8, 8), "n_residual": 1, "end_kernel": 3, "crop": 64, "batch": 2, "augment": 2,
        "style_size": 64, "checkpoint_every": 2, "log_every": 1}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ghiasi_data")
    return {"photos": image_folder(root / "photos", 4, 0, False),
            "paintings": image_folder(root / "paintings", 3, 1, True), "root": root}


def test_trains_resumes_and_reuses_the_bank(data, tmp_path) -> None:
    out = tmp_path / "run"
    cfg = GhiasiTrainConfig(content=[str(data["photos"])], styles=[str(data["paintings"])], out_dir=str(out),
                            steps=3, **TINY)
    model = train_ghiasi(cfg)
    net = GhiasiNet.from_pretrained(model)
    assert net.config.widths == (4, 8, 8)
    assert float(net.stat_scale.min()) > 0 and float(net.stat_mean.abs().sum()) > 0  # set from the bank
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(r["style"] > 0 for r in log)
    bank_time = (out / "bank.pt").stat().st_mtime_ns
    assert torch.load(out / "bank.pt", weights_only=True)["stats"].shape[0] == 3 * 2  # 3 paintings x 2 views
    cfg.steps = 5
    train_ghiasi(cfg)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    assert (out / "bank.pt").stat().st_mtime_ns == bank_time
    snap = model_from_checkpoint(out, tmp_path / "snap")
    assert GhiasiNet.from_pretrained(snap).config.embedding == 100
    other = image_folder(data["root"] / "other_paintings", 2, 5, True)
    with pytest.raises(ConfigError, match="other paintings"):
        train_ghiasi(GhiasiTrainConfig(content=[str(data["photos"])], styles=[str(other)], out_dir=str(out),
                                       steps=6, **TINY))


def test_warm_start_from_a_cin_net(data, tmp_path) -> None:
    cin = TransformerNet(TransformerConfig(widths=(4, 8, 8), n_residual=1, end_kernel=3, n_styles=2))
    cin.save_pretrained(tmp_path / "cin")
    out = train_ghiasi(GhiasiTrainConfig(content=[str(data["photos"])], styles=[str(data["paintings"])],
                                         out_dir=str(tmp_path / "run"), steps=1, init=str(tmp_path / "cin"), **TINY))
    notes = json.loads((out / "training.json").read_text())["notes"]
    assert any("warm start" in n for n in notes)
    with pytest.raises(ConfigError, match="must match"):
        train_ghiasi(GhiasiTrainConfig(content=[str(data["photos"])], styles=[str(data["paintings"])],
                                       out_dir=str(tmp_path / "run2"), steps=1, init=str(tmp_path / "cin"),
                                       **{**TINY, "widths": (4, 8, 16)}))


def test_augmentation_varies_colour_and_framing() -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3)).astype(np.uint8))
    rng = random.Random(0)
    views = [np.asarray(augment_painting(img, rng, 64), dtype=float) for _ in range(4)]
    assert all(v.shape == (64, 64, 3) for v in views)
    assert np.abs(views[0] - views[1]).mean() > 1
    plain = np.asarray(augment_painting(img, rng, 64, plain=True), dtype=float)
    again = np.asarray(augment_painting(img, random.Random(9), 64, plain=True), dtype=float)
    assert np.array_equal(plain, again)


def test_bad_training_input_is_one_line(data, tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no paintings here")
    one = image_folder(tmp_path / "one", 1, 3, True)
    for styles, msg in ((empty, "no images"), (one, "at least 2 paintings"), (tmp_path / "missing", "not found")):
        code = main(["train", "ghiasi", "--content", str(data["photos"]), "--styles", str(styles), "-o",
                     str(tmp_path / "run"), "--steps", "1", "-q"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and msg in err[0], err
    code = main(["train", "ghiasi", "--content", str(data["photos"]), "--styles", str(data["paintings"]), "-o",
                 str(tmp_path / "run"), "--crop", "30", "-q"])
    assert code == 2 and "crop must be" in capsys.readouterr().err


def test_cli_defaults_match_the_config() -> None:
    from dataclasses import fields

    from brushwork.cli.train import GHIASI_DEFAULTS

    defaults = {f.name: f.default for f in fields(GhiasiTrainConfig)}
    assert {k: defaults[k] for k in GHIASI_DEFAULTS} == GHIASI_DEFAULTS
