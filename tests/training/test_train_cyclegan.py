"""CycleGAN training on generated pictures: a real tiny run, an exact resume after SIGTERM (nets, optimizers,
pools, RNGs), the unet generator, two DDP ranks under torchrun, and bad input refused in one line with exit 2."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from launch import run_torchrun
from media import image_folder
from PIL import Image

from brushwork.cli.main import main
from brushwork.cli.train import CYCLEGAN_DEFAULTS
from brushwork.errors import ConfigError, TrainingStopped
from brushwork.methods.cyclegan import CycleGANNet
from brushwork.training.cyclegan import CycleGANTrainConfig, train_cyclegan
from brushwork.training.loop import load_checkpoint, read_log

TINY = {"ngf": 4, "n_blocks": 1, "ndf": 4, "crop": 64, "checkpoint_every": 2, "log_every": 1, "sample_every": 2,
        "pool_size": 2, "precision": "fp32"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cyclegan_data")
    return {"photos": image_folder(root / "photos", 4, 0, False),
            "paintings": image_folder(root / "paintings", 3, 1, True), "root": root}


def _cfg(data, out, **kw) -> CycleGANTrainConfig:
    return CycleGANTrainConfig(photos=[str(data["photos"])], paintings=[str(data["paintings"])], out_dir=str(out),
                               name="stripes", **{**TINY, **kw})


def test_cli_defaults_are_the_configs() -> None:
    cfg = CycleGANTrainConfig(photos=[], paintings=[], out_dir="x")
    assert {k: getattr(cfg, k) for k in CYCLEGAN_DEFAULTS} == CYCLEGAN_DEFAULTS
    assert (cfg.lr, cfg.beta1, cfg.cycle_weight, cfg.identity, cfg.pool_size, cfg.batch) == (2e-4, 0.5, 10, 0.5, 50, 1)


def test_tiny_run_writes_model_log_plot_and_samples(data, tmp_path) -> None:
    out = tmp_path / "run"
    model = train_cyclegan(_cfg(data, out, steps=3, exclude=["img3*"], exclude_paintings=["img2*"]))
    net = CycleGANNet.from_pretrained(model)
    assert net.config.names == ("stripes", "photo") and net.config.ngf == 4
    log = read_log(out)
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(r["cycle"] > 0 and r["d_a"] > 0 and r["identity"] > 0 for r in log)
    assert (out / "losses.png").is_file() and (out / "samples" / "step_0000002.png").is_file()
    info = json.loads((model / "training.json").read_text())
    assert info["held_out_photos"] == ["img3.png"] and info["held_out_paintings"] == ["img2.png"]
    assert info["photos_used"] == 3 and info["steps_done"] == 3
    # a sample sheet: 1 held-out photo and 1 held-out painting (88x72 at 2x the crop: 128x104), 3 columns
    assert Image.open(out / "samples" / "step_0000002.png").size == (3 * 128, 2 * 104)


def test_sigterm_then_resume_equals_an_uninterrupted_run(data, tmp_path) -> None:
    torch.manual_seed(0)
    straight = train_cyclegan(_cfg(data, tmp_path / "a", steps=5))

    def kill_at_3(step: int, total: int, losses: dict) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingStopped, match="stopped at step 3 of 5"):
        train_cyclegan(_cfg(data, tmp_path / "b", steps=5), progress=kill_at_3)
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert state["step"] == 3 and len(state["pools"][0]["images"]) == 2  # the pool (full: swaps ran) is saved
    resumed = train_cyclegan(_cfg(data, tmp_path / "b", steps=5))
    a, b = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True), \
        torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    for part in ("gens", "discs"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert [r["step"] for r in read_log(tmp_path / "b")] == [1, 2, 3, 4, 5]
    assert [r["g_total"] for r in read_log(tmp_path / "a")] == [r["g_total"] for r in read_log(tmp_path / "b")]
    assert CycleGANNet.from_pretrained(resumed).config == CycleGANNet.from_pretrained(straight).config


def test_unet_generator_trains_and_another_kind_is_refused(data, tmp_path) -> None:
    out = tmp_path / "run"
    model = train_cyclegan(_cfg(data, out, steps=1, generator="unet", depth=3, identity=0.0))
    net = CycleGANNet.from_pretrained(model)
    assert net.config.generator == "unet" and net.config.multiple == 8
    assert read_log(out)[0]["identity"] == 0.0
    with pytest.raises(ConfigError, match=r"another CycleGAN.*generator unet"):
        train_cyclegan(_cfg(data, out, steps=2, generator="resnet"))


def test_init_warm_starts_the_generators_and_the_warmup_trains_only_the_discriminators(data, tmp_path) -> None:
    first = train_cyclegan(_cfg(data, tmp_path / "a", steps=2))
    trained = CycleGANNet.from_pretrained(first)
    out = tmp_path / "b"
    model = train_cyclegan(_cfg(data, out, steps=2, init=str(first), d_warmup=2, sample_every=0))
    after = CycleGANNet.from_pretrained(model)  # the warm-up left both generators as they were
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), after.state_dict().values()))
    assert read_log(out)[-1]["d_a"] > 0
    info = json.loads((model / "training.json").read_text())
    assert info["init"]["steps"] == 2 and info["init"]["model"] == str(first) and len(info["init"]["sha256"]) == 64
    moved = CycleGANNet.from_pretrained(train_cyclegan(_cfg(data, out, steps=3, init=str(first), d_warmup=2)))
    assert not all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), moved.state_dict().values()))
    with pytest.raises(ConfigError, match=r"--init .*ngf"):
        train_cyclegan(_cfg(data, tmp_path / "c", steps=1, ngf=8, init=str(first)))
    assert not (tmp_path / "c" / "checkpoint.pt").exists()


def test_ema_ships_the_weight_average_and_resumes_it(data, tmp_path) -> None:
    torch.manual_seed(0)
    model = train_cyclegan(_cfg(data, tmp_path / "a", steps=4, ema=0.5, sample_every=0))
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    raw, shipped = state["gens"], CycleGANNet.from_pretrained(model).state_dict()  # shipped as fp16
    averaged = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    assert averaged.keys() == shipped.keys() == raw.keys()
    assert all(torch.equal(averaged[k].half().float(), shipped[k].float()) for k in shipped)  # the average ships
    assert not all(torch.equal(raw[k].half().float(), shipped[k].float()) for k in shipped)  # not the raw nets
    assert int(state["ema"]["n_averaged"]) == 4

    def kill_at_2(step: int, total: int, losses: dict) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    torch.manual_seed(0)
    with pytest.raises(TrainingStopped):
        train_cyclegan(_cfg(data, tmp_path / "b", steps=4, ema=0.5, sample_every=0), progress=kill_at_2)
    resumed = train_cyclegan(_cfg(data, tmp_path / "b", steps=4, ema=0.5, sample_every=0))
    again = CycleGANNet.from_pretrained(resumed).state_dict()
    assert all(torch.equal(again[k], shipped[k]) for k in shipped)  # the average survived the kill


def _cli(data, out, *extra: str) -> list[str]:
    return ["train", "cyclegan", "--photos", str(data["photos"]), "--paintings", str(data["paintings"]), "-o",
            str(out), "--crop", "64", "--ngf", "4", "--blocks", "1", "--ndf", "4", "--steps", "1", "-q", *extra]


def test_cli_trains_and_prints_how_to_use(data, tmp_path, capsys) -> None:
    assert main(_cli(data, tmp_path / "run", "--name", "stripes", "--sample-every", "0")) == 0
    assert "-s photo for the reverse" in capsys.readouterr().out
    cfg = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert cfg["kind"] == "cyclegan" and cfg["training"]["command"].startswith("brushwork ")


def _bad_cases(data, tmp_path) -> dict[str, tuple[list[str], str]]:
    root = tmp_path
    (root / "empty").mkdir()
    (root / "texts").mkdir()
    (root / "texts" / "notes.txt").write_text("no images here")
    single = image_folder(root / "single", 1, 3, True)
    small = image_folder(root / "small", 3, 4, False, size=(48, 40))
    other = root / "other_run"
    other.mkdir()
    torch.save({"step": 4, "net": {}, "opt": {}}, other / "checkpoint.pt")  # a johnson/cin run's checkpoint
    photos, paintings = str(data["photos"]), str(data["paintings"])

    def with_folders(p: str, q: str, *extra: str, out: str = str(root / "out")) -> list[str]:
        return ["train", "cyclegan", "--photos", p, "--paintings", q, "-o", out, "--crop", "64", "--ngf", "4",
                "--blocks", "1", "--ndf", "4", "--steps", "1", "-q", *extra]

    return {
        "empty folder": (with_folders(str(root / "empty"), paintings), "no images"),
        "image-less folder": (with_folders(photos, str(root / "texts")), "no images"),
        "missing folder": (with_folders(str(root / "nowhere"), paintings), "not found"),
        "single image": (with_folders(photos, str(single)), "1 image"),
        "photos smaller than the crop": (with_folders(str(small), paintings), "smaller than the 64 px crop"),
        "everything held out": (with_folders(photos, paintings, "--exclude", "img*"), "no images"),
        "another method's run": (with_folders(photos, paintings, out=str(other)), "another method"),
        "crop not a multiple": (with_folders(photos, paintings, "--crop", "66"), "multiple of 4"),
        "unet too deep for the crop": (with_folders(photos, paintings, "--generator", "unet", "--depth", "7"),
                                       "multiple of 128"),
        "zero lr": (with_folders(photos, paintings, "--lr", "0"), "lr must be"),
        "lr decay": (with_folders(photos, paintings, "--lr-decay", "0.1"), "linearly"),
        "init not a model": (with_folders(photos, paintings, "--init", str(root / "texts")), "CycleGAN"),
        "init unknown": (with_folders(photos, paintings, "--init", "no_such_model"), "unknown model"),
        "ema not a decay": (with_folders(photos, paintings, "--ema", "1.5"), "ema must be"),
    }


def test_bad_input_is_one_line_and_exit_2(data, tmp_path, capfd) -> None:
    for name, (argv, message) in _bad_cases(data, tmp_path).items():
        code = main(argv)
        err = capfd.readouterr().err.strip()
        assert code == 2, (name, err)
        assert err.startswith("brushwork: error:") and len(err.splitlines()) == 1 and message in err, (name, err)
    assert load_checkpoint(tmp_path / "other_run" / "checkpoint.pt")["step"] == 4  # untouched


DDP_SCRIPT = """
import sys
from brushwork.training import distributed
from brushwork.training.cyclegan import CycleGANTrainConfig, train_cyclegan

root = sys.argv[1]
tiny = dict(photos=[root + "/photos"], paintings=[root + "/paintings"], ngf=4, n_blocks=1, ndf=4, crop=64,
            checkpoint_every=2, log_every=1, sample_every=2, pool_size=2, precision="fp32")
with distributed.launch("cpu") as dev:
    assert distributed.world_size() == 2
    train_cyclegan(CycleGANTrainConfig(out_dir=root + "/a", steps=3, **tiny), device=dev)
    train_cyclegan(CycleGANTrainConfig(out_dir=root + "/b", steps=2, **tiny), device=dev)
    train_cyclegan(CycleGANTrainConfig(out_dir=root + "/b", steps=3, **tiny), device=dev)  # resumed
"""


def test_torchrun_two_cpu_ranks(data, tmp_path) -> None:
    (tmp_path / "script.py").write_text(DDP_SCRIPT)
    for name in ("photos", "paintings"):
        (tmp_path / name).symlink_to(data[name])
    run_torchrun(tmp_path / "script.py", tmp_path, 240)
    a, b = read_log(tmp_path / "a"), read_log(tmp_path / "b")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]  # one writer
    for x, y in zip(a, b):  # the resumed run continues both ranks' streams and pools: the same averaged losses
        assert x["g_total"] == pytest.approx(y["g_total"], rel=1e-5)
    ranks = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["ranks"]
    assert len(ranks) == 2 and ranks[0]["photos"] != ranks[1]["photos"] and len(ranks[1]["pools"]) == 2
    assert CycleGANNet.from_pretrained(tmp_path / "a" / "model").config.ngf == 4
