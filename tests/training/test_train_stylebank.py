"""``brushwork train stylebank``: the T+1 schedule, resume, incremental banks, outputs and errors (tiny nets)."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli import train as cli_train
from brushwork.cli.main import build_parser, main
from brushwork.errors import ConfigError, ModelError
from brushwork.methods.stylebank import StyleBankNet, StyleBankStylizer
from brushwork.training import stylebank as T
from brushwork.training.stylebank import StyleBankTrainConfig, add_stylebank_style, train_stylebank


def _image(path: Path, seed: int, size=(96, 80)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("train")
    (root / "content").mkdir()
    for i in range(4):
        _image(root / "content" / f"img_{i}.png", i)
    styles = [_image(root / "waves.png", 10, (72, 96)), _image(root / "dots.jpg", 11), _image(root / "zigzag.png", 12)]
    return root / "content", styles


def _cfg(data, out: Path, steps: int, styles: list[Path] | None = None, **kw) -> StyleBankTrainConfig:
    return StyleBankTrainConfig(content=[str(data[0])], styles=[str(s) for s in (styles or data[1][:2])],
                                out_dir=str(out), steps=steps, batch=2, crop=64, style_size=64, checkpoint_every=2,
                                log_every=1, widths=(4, 8, 8), style_steps=1, precision="fp32", **kw)


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def base(data, tmp_path_factory) -> Path:
    """A 4-step two-style model: steps 1 and 3 stylize, 2 and 4 train the identity branch."""
    return train_stylebank(_cfg(data, tmp_path_factory.mktemp("base") / "run", 4))


def test_train_writes_a_model_and_alternates_branches(base):
    run = base.parent
    assert (base / "model.safetensors").is_file() and (run / "losses.png").is_file()
    log = _log(run)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert ["reconstruction" in r for r in log] == [False, True, False, True]
    assert all({"content", "style", "tv", "total", "style_index"} <= r.keys() for r in log[::2])
    meta = json.loads((base / "training.json").read_text())
    assert meta["kind"] == "stylebank" and meta["mode"] == "train" and meta["style_names"] == ["waves", "dots"]
    assert meta["final"]["step"] == 4 and meta["content_layer"] == "relu2_2"
    net = StyleBankNet.from_pretrained(base)
    assert net.style_names == ("waves", "dots") and net.config.widths == (4, 8, 8)
    res = StyleBankStylizer(base, precision="fp32").stylize(_image(run / "p.png", 5, (50, 37)), "dots")
    assert res.image.size == (50, 37) and res.styles == {"dots": 1.0}


def test_resume_matches_an_unbroken_run(data, base, tmp_path):
    train_stylebank(_cfg(data, tmp_path / "b", 2))  # "killed" after its step-2 checkpoint
    train_stylebank(_cfg(data, tmp_path / "b", 4))
    log_a, log_b = _log(base.parent), _log(tmp_path / "b")
    assert [r["step"] for r in log_b] == [1, 2, 3, 4]
    for ra, rb in zip(log_a, log_b):
        assert ra.keys() == rb.keys() and ra.get("style_index") == rb.get("style_index")
        key = "total" if "total" in ra else "reconstruction"
        assert ra[key] == pytest.approx(rb[key], rel=1e-5)
    ca, cb = (torch.load(r / "checkpoint.pt", weights_only=True)["net"] for r in (base.parent, tmp_path / "b"))
    for k in ca:
        assert torch.allclose(ca[k], cb[k], atol=1e-6), k


def test_identity_step_trains_only_the_autoencoder(data, tmp_path):
    cfg = replace(_cfg(data, tmp_path / "r", 1), checkpoint_every=1)
    train_stylebank(cfg)
    one = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["net"]
    train_stylebank(replace(cfg, steps=2))  # step 2 is the identity step
    two = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["net"]
    assert all(torch.equal(one[k], two[k]) for k in one if k.startswith("banks."))
    assert not torch.equal(one["encoder.0.conv.weight"], two["encoder.0.conv.weight"])
    assert not torch.equal(one["decoder.0.conv.weight"], two["decoder.0.conv.weight"])


def test_add_style_trains_only_the_new_bank(data, base, tmp_path):
    cfg = _cfg(data, tmp_path / "add", 2, styles=data[1][2:], base_model=str(base))
    model = add_stylebank_style(cfg)
    old, new = StyleBankNet.from_pretrained(base), StyleBankNet.from_pretrained(model)
    assert new.style_names == ("waves", "dots", "zigzag")
    new_state = new.state_dict()
    for k, v in old.state_dict().items():  # encoder, decoder and both old banks: bit-identical
        assert torch.equal(v, new_state[k]), k
    from safetensors.torch import load_file

    raw_old, raw_new = (load_file(str(p / "model.safetensors")) for p in (base, model))
    assert all(torch.equal(raw_old[k], raw_new[k]) for k in raw_old)
    assert sorted(set(raw_new) - set(raw_old)) == sorted(k for k in raw_new if k.startswith("banks.2."))
    meta = json.loads((model / "training.json").read_text())
    assert meta["mode"] == "add_style" and meta["added_style"] == "zigzag" and meta["base_styles"] == ["waves", "dots"]
    assert meta["widths"] == [4, 8, 8] and meta["base_training"]["mode"] == "train"
    assert [r["step"] for r in _log(tmp_path / "add")] == [1, 2] and "total" in _log(tmp_path / "add")[-1]
    # resumable like the full trainer: 1 + 1 steps end where 2 did
    add_stylebank_style(replace(cfg, out_dir=str(tmp_path / "add2"), steps=1, checkpoint_every=1))
    again = add_stylebank_style(replace(cfg, out_dir=str(tmp_path / "add2"), checkpoint_every=1))
    for k, v in StyleBankNet.from_pretrained(again).state_dict().items():
        assert torch.allclose(v, new_state[k], atol=1e-3), k
    res = StyleBankStylizer(model, precision="fp32").stylize(_image(tmp_path / "p.png", 6, (40, 40)),
                                                              {"zigzag": 1, "waves": 1})
    assert res.styles == {"waves": 0.5, "zigzag": 0.5}


def test_add_style_errors(data, base, tmp_path):
    add = _cfg(data, tmp_path / "x", 1, styles=data[1][2:], base_model=str(base))
    with pytest.raises(ConfigError, match="already holds a style named 'waves'"):
        add_stylebank_style(replace(add, styles=[str(data[1][0])]))
    with pytest.raises(ConfigError, match="one style at a time"):
        add_stylebank_style(replace(add, styles=[str(s) for s in data[1]]))
    with pytest.raises(ConfigError, match="needs the trained StyleBank model"):
        add_stylebank_style(replace(add, base_model=""))
    with pytest.raises(ModelError, match="not a StyleBank model folder"):
        add_stylebank_style(replace(add, base_model=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="base_model is for add_stylebank_style"):
        train_stylebank(add)
    # a checkpoint made against another base is refused, not mixed
    add_stylebank_style(replace(add, out_dir=str(tmp_path / "y")))
    other = tmp_path / "other"
    shutil.copytree(base, other)
    net = StyleBankNet.from_pretrained(other)
    with torch.no_grad():
        net.decoder[0].conv.weight.add_(0.5)
    net.save_pretrained(other)
    with pytest.raises(ModelError, match="another version of"):
        add_stylebank_style(replace(add, out_dir=str(tmp_path / "y"), base_model=str(other), steps=2))
    # and a full-training run folder is not reused by an add-style run (or the reverse)
    with pytest.raises(ConfigError, match="another run"):
        add_stylebank_style(replace(add, out_dir=str(base.parent), steps=8))
    with pytest.raises(ConfigError, match="another run"):
        train_stylebank(replace(_cfg(data, tmp_path / "y", 2)))


def test_config_errors(data, tmp_path):
    for bad, match in (({"crop": 66}, "multiple of 4"), ({"style_steps": 0}, "style-steps >= 1"),
                       ({"styles": []}, "at least one style"), ({"lr": 0.0}, "lr must be"),
                       ({"styles": [str(data[1][0]), str(data[1][0])]}, "two styles are named 'waves'")):
        with pytest.raises(ConfigError, match=match):
            train_stylebank(replace(_cfg(data, tmp_path / "e", 2), **bad))


def test_cli_add_style_end_to_end(capsys, data, base, tmp_path):
    code = main(["train", "stylebank", "--add-style", str(data[1][2]), "--from", str(base), "--content",
                 str(data[0]), "-o", str(tmp_path / "cli"), "--steps", "1", "--batch", "1", "--crop", "64",
                 "--style-size", "64", "--precision", "fp32", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "added 'zigzag'" in captured.out
    assert StyleBankNet.from_pretrained(tmp_path / "cli" / "model").style_names == ("waves", "dots", "zigzag")


@pytest.mark.parametrize(("args", "match"), [
    (["--add-style", "c.jpg"], "needs --from"),
    (["--style", "a.jpg", "--from", "m"], "--from goes with --add-style"),
    (["--style", "a.jpg", "--add-style", "c.jpg"], "not allowed with"),
])
def test_cli_errors_are_one_line(capsys, tmp_path, args, match):
    code = main(["train", "stylebank", *args, "--content", str(tmp_path), "-o", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and match in err
    assert not (tmp_path / "run").exists()


def test_cli_defaults_match_the_config():
    defaults = {f.name: f.default for f in fields(StyleBankTrainConfig)}
    args = build_parser().parse_args(["train", "stylebank", "--style", "a.jpg", "--style", "b.jpg", "--content", "c",
                                      "-o", "o"])
    assert args.train_method == "stylebank" and args.style == ["a.jpg", "b.jpg"] and args.steps is None
    for name in ("batch", "crop", "lr", "lr_decay", "style_weight", "tv_weight", "style_size", "style_steps"):
        assert getattr(args, name) == defaults[name], name
    assert (defaults["steps"], T.ADD_STYLE_STEPS) == (cli_train.STYLEBANK_STEPS, cli_train.STYLEBANK_ADD_STEPS)
