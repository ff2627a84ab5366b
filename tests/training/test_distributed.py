"""Data-parallel training under torchrun: 2 CPU processes (gloo), tiny nets, one writer; helpers in one process."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from launch import run_torchrun
from PIL import Image

from brushwork.training import distributed

SCRIPT = textwrap.dedent("""
    import sys
    from brushwork.cli.main import main
    from brushwork.training import distributed
    from brushwork.training.feedforward import FeedForwardTrainConfig, train_feedforward
    from brushwork.training.stylebank import StyleBankTrainConfig, train_stylebank

    root = sys.argv[1]
    common = dict(content=[root + "/content"], batch=1, crop=64, style_size=64, checkpoint_every=2, log_every=1,
                  widths=(4, 8, 8), precision="fp32")
    with distributed.launch("cpu") as dev:
        assert distributed.world_size() == 2 and str(dev) == "cpu"
        johnson = dict(styles=[root + "/waves.png"], n_residual=1, **common)
        train_feedforward(FeedForwardTrainConfig(out_dir=root + "/j", steps=3, **johnson), device=dev)
        train_feedforward(FeedForwardTrainConfig(out_dir=root + "/k", steps=2, **johnson), device=dev)
        train_feedforward(FeedForwardTrainConfig(out_dir=root + "/k", steps=3, **johnson), device=dev)  # resumed
        train_stylebank(StyleBankTrainConfig(styles=[root + "/waves.png", root + "/dots.png"], out_dir=root + "/sb",
                                             steps=3, style_steps=1, **common), device=dev)
        # the CLI under torchrun (it would join the group itself; re-initialising one in a process can hang)
        code = main(["train", "stylebank", "--add-style", root + "/zigzag.png", "--from", root + "/sb/model",
                     "--content", root + "/content", "-o", root + "/add", "--steps", "2", "--batch", "1",
                     "--crop", "64", "--style-size", "64", "--precision", "fp32", "-q"])
    sys.exit(code)
""")


def _image(path: Path, seed: int, size=(96, 80)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(path)
    return path


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_torchrun_two_cpu_ranks_write_once(tmp_path):
    (tmp_path / "content").mkdir()
    for i in range(4):
        _image(tmp_path / "content" / f"img_{i}.png", i)
    for i, name in enumerate(("waves", "dots", "zigzag")):
        _image(tmp_path / f"{name}.png", 10 + i)
    (tmp_path / "script.py").write_text(SCRIPT)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out, _ = run_torchrun(tmp_path / "script.py", tmp_path, 180, {"TMPDIR": str(scratch)})
    assert out.count("added 'zigzag'") == 1  # the closing line comes from rank 0 only
    for run, logged in (("j", [1, 2, 3]), ("k", [1, 2, 3]), ("sb", [1, 2, 3]), ("add", [2])):  # the CLI logs every 10
        files = sorted(p.relative_to(tmp_path / run).as_posix() for p in (tmp_path / run).rglob("*") if p.is_file())
        assert files == ["checkpoint.pt", "log.jsonl", "losses.png", "model/config.json", "model/model.safetensors",
                         "model/training.json"], run
        assert [r["step"] for r in _log(tmp_path / run)] == logged, run  # one writer
    assert not list(scratch.glob("brushwork-rank*"))  # the other rank's private run folders are gone
    # each rank drew its own crops, and the checkpoint keeps both streams
    ranks = torch.load(tmp_path / "j" / "checkpoint.pt", weights_only=True)["ranks"]
    assert len(ranks) == 2 and ranks[0]["contents"] != ranks[1]["contents"]
    # a resumed distributed run continues every rank's stream: same (rank-averaged) losses as the unbroken one
    for a, b in zip(_log(tmp_path / "j"), _log(tmp_path / "k")):
        assert a["total"] == pytest.approx(b["total"], rel=1e-5)
    resumed = torch.load(tmp_path / "k" / "checkpoint.pt", weights_only=True)["ranks"]
    assert [r["contents"] for r in resumed] == [r["contents"] for r in ranks]
    # the StyleBank run went through identity steps (no bank in the graph) without DDP complaining
    assert ["reconstruction" in r for r in _log(tmp_path / "sb")] == [False, True, False]
    meta = json.loads((tmp_path / "add" / "model" / "training.json").read_text())
    assert meta["mode"] == "add_style" and meta["style_names"] == ["waves", "dots", "zigzag"]


def test_helpers_without_a_process_group():
    assert not distributed.is_distributed() and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.is_main() and distributed.rank_seed(7) == 7
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap(net) is net
    assert distributed.backend_for("cpu") == "gloo" and distributed.backend_for("cuda:1") == "nccl"
    distributed.barrier()  # no-op
    with distributed.launch("cpu") as dev:  # not under torchrun: nothing is initialised
        assert dev == torch.device("cpu") and not torch.distributed.is_initialized()
