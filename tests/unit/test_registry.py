"""Shipped models by name: folders, style names, --method cin, `brushwork models`, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from brushwork import registry
from brushwork.cli.main import main
from brushwork.errors import ConfigError
from brushwork.methods.feedforward import TransformerConfig, TransformerNet


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> Path:
    """A models folder holding a tiny cin net (two styles) and a decoy folder without weights."""
    root = tmp_path / "models"
    torch.manual_seed(0)
    cfg = TransformerConfig(widths=(4, 8, 8), n_residual=1, n_styles=2, style_names=("waves", "stars"))
    TransformerNet(cfg).save_pretrained(root / "paintings")
    (root / "paintings" / "MODEL.json").write_text(json.dumps({"steps": 123, "distill_steps": 45}))
    (root / "empty").mkdir()
    monkeypatch.setattr(registry, "models_dir", lambda: root)
    return root


def test_models_are_found_by_folder_and_style_name(shipped) -> None:
    (info,) = registry.shipped_models()
    assert (info.name, info.kind, info.styles, info.steps) == ("paintings", "cin", ("waves", "stars"), 123)
    assert info.distill_steps == 45
    assert registry.resolve_model("paintings") == (shipped / "paintings", None)
    assert registry.resolve_model("stars") == (shipped / "paintings", "stars")
    assert registry.resolve_model(shipped / "paintings") == (shipped / "paintings", None)  # a folder as is


def test_unknown_names_suggest_the_closest(shipped) -> None:
    with pytest.raises(ConfigError, match="did you mean 'stars'"):
        registry.resolve_model("starz")
    with pytest.raises(ConfigError, match="model folder not found"):
        registry.resolve_model("runs/nothing/model")


def test_cli_model_by_style_name_and_method_cin_blend(shipped, media_files, tmp_path, capsys) -> None:
    photo = str(media_files.photo)
    one, blend = tmp_path / "one.png", tmp_path / "blend.png"
    assert main(["stylize", photo, "--model", "stars", "-o", str(one), "--size", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["styles"] == {"stars": 1.0}
    assert main(["stylize", photo, "--method", "cin", "-s", "stars:0.5,waves:0.5", "-o", str(blend), "--size", "64",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["styles"] == {"waves": 0.5, "stars": 0.5}
    assert main(["stylize", photo, "--method", "cin", "-s", "starz", "-o", str(blend), "--size", "64"]) == 2
    assert "did you mean 'stars'" in capsys.readouterr().err


def test_cli_models_lists_shipped(shipped, capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "paintings" in out and "waves, stars" in out
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["styles"] == ["waves", "stars"]


def test_demo_with_a_shipped_style(shipped, tmp_path, capsys) -> None:
    out = tmp_path / "demo.png"
    assert main(["demo", "--model", "waves", "-o", str(out), "--size", "64"]) == 0
    assert out.is_file() and "'waves' (feedforward)" in capsys.readouterr().out
    assert main(["demo", "--model", "waves", "--method", "adain", "-o", str(out)]) == 2
