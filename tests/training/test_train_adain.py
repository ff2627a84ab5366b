"""``brushwork train adain``: a real (tiny) run on generated images, its resume, its outputs and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli.main import main
from brushwork.errors import ConfigError, ModelError
from brushwork.methods.adain import AdaINDecoder
from brushwork.training.adain import AdaINTrainConfig, train_adain
from brushwork.training.data import RandomCrops, list_images


def _folder(root: Path, n: int, seed: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = (rng.random((80, 96, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"img_{i}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    content, styles = _folder(root / "content", 4, 0), _folder(root / "styles", 3, 1)
    (content / "notes.txt").write_text("not an image")  # ignored: not an image extension
    (content / "broken.jpg").write_bytes(b"\xff\xd8 truncated")  # skipped and counted
    return content, styles


def _cfg(data, out: Path, steps: int) -> AdaINTrainConfig:
    return AdaINTrainConfig(content=[str(data[0])], styles=[str(data[1])], out_dir=str(out), steps=steps, batch=2,
                            crop=64, checkpoint_every=2, log_every=1, widths=(8, 8, 8, 8),
                            convs_per_stage=(1, 1, 1, 1), precision="fp32")


def test_train_then_resume_matches_an_unbroken_run(data, tmp_path):
    torch.set_num_threads(1)
    model = train_adain(_cfg(data, tmp_path / "a", 4))
    assert (model / "model.safetensors").is_file() and (tmp_path / "a" / "losses.png").is_file()
    meta = json.loads((model / "training.json").read_text())
    assert meta["steps"] == 4 and meta["final"]["step"] == 4
    # the same run "killed" after its step-2 checkpoint, then resumed to step 4
    train_adain(_cfg(data, tmp_path / "b", 2))
    train_adain(_cfg(data, tmp_path / "b", 4))
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    a, b = AdaINDecoder.from_pretrained(model), AdaINDecoder.from_pretrained(tmp_path / "b" / "model")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-3), k


def test_skips_unreadable_files_and_excludes_by_name(data):
    files = list_images(data[0])
    assert len(files) == 5  # 4 images + the broken one; notes.txt is no image
    assert len(list_images(data[0], exclude=["IMG_0*"])) == 4
    crops = RandomCrops(data[0], 32, 16, seed=0)
    batch = next(iter(crops))
    assert batch.shape == (16, 3, 32, 32) and batch.min() >= 0 and batch.max() <= 1
    assert any("broken.jpg" in s for s in crops.skipped)


def test_errors(data, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        list_images(tmp_path / "empty")
    with pytest.raises(ConfigError, match="not found"):
        list_images(tmp_path / "missing")
    with pytest.raises(ConfigError, match="multiple of 8"):
        train_adain(AdaINTrainConfig(content=[str(data[0])], styles=[str(data[1])], out_dir=str(tmp_path), crop=100))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="corrupt checkpoint"):
        train_adain(_cfg(data, tmp_path / "run", 2))


def test_cli_train_empty_folder_is_one_line(capsys, data, tmp_path):
    (tmp_path / "empty").mkdir()
    code = main(["train", "adain", "--content", str(tmp_path / "empty"), "--styles", str(data[1]),
                 "-o", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no images" in err
