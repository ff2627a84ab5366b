"""The method registry: built-ins declared once, a new method plugs in with one registration and
appears in the CLI, option ownership and inference, one-line refusals."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from brushwork.cli.main import main
from brushwork.errors import ConfigError
from brushwork.methods import registry
from brushwork.methods.registry import Method, Request, Result, get_method, infer_method, option, options_from


def _photo(tmp_path, size=(64, 48)):
    rng = np.random.default_rng(0)
    arr = (np.linspace(0, 255, size[0])[None, :, None] * np.ones((size[1], 1, 3))).astype(np.uint8)
    arr[::7] = rng.integers(0, 255, (arr[::7].shape)).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(arr).save(path)
    return path


def test_builtin_methods_are_registered_with_their_options() -> None:
    names = registry.method_names()
    assert {"optimize", "adain", "feedforward", "ghiasi"} <= set(names)
    assert get_method("cin").name == "feedforward"  # an alias
    assert "steps" in {f.name for f in registry.option_fields(get_method("optimize"))}
    assert "decoder" in {f.name for f in registry.option_fields(get_method("adain"))}
    assert not get_method("optimize").one_pass and get_method("adain").one_pass
    shared = registry.all_options()["style_size"][1]
    assert {m.name for m in shared} == {"adain", "ghiasi"}


def test_unknown_method_suggests_a_name() -> None:
    with pytest.raises(ConfigError, match="did you mean 'adain'"):
        get_method("adian")


def test_options_of_another_method_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"--steps: option\(s\) of --method optimize, not adain"):
        options_from(get_method("adain"), {"steps": 3, "decoder": None})
    opts = options_from(get_method("optimize"), {"steps": 3, "decoder": None})
    assert opts.steps == 3


def test_method_is_inferred_from_options_and_model(monkeypatch) -> None:
    assert infer_method({"steps": 5}).name == "optimize"
    assert infer_method({"decoder": "dir"}).name == "adain"
    # a colour control the default lacks picks the best-ranked method that has it
    assert infer_method({"preserve_color": "match"}).name == "adain"
    assert infer_method({"preserve_color": "luminance"}).name == registry.default_method().name
    assert infer_method({"blend": "slerp"}).name == "ghiasi"
    assert infer_method({}, model="starry_night").name == "feedforward"
    assert infer_method({}).name == registry.default_method().name


@dataclass(frozen=True)
class _InvertOptions:
    amount: float | None = option(type=float, help="invert: share of the inverted photo (default 1)")


def test_a_new_method_is_one_registration_and_the_cli_offers_it(monkeypatch, tmp_path, capsys) -> None:
    """A toy method (not style transfer: it inverts) registered from outside shows up as
    --method invert with its own --amount flag, and the stylize command runs it end to end."""
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))

    @registry.register
    class Invert(Method):
        name = "invert"
        summary = "test: the photo inverted"
        Options = _InvertOptions

        def load(self, request: Request):
            return "loaded"

        def stylize(self, loaded, photo, request: Request) -> Result:
            from brushwork.image.io import load_image

            assert loaded == "loaded"
            img = np.asarray(load_image(photo), dtype=np.float32)
            amount = 1.0 if request.options.amount is None else request.options.amount
            out = (1 - amount) * img + amount * (255 - img)
            return Result(Image.fromarray(out.astype(np.uint8)), 0.0, img.shape[1::-1], [], {"amount": amount})

    photo = _photo(tmp_path)
    out = tmp_path / "out.png"
    assert main(["stylize", str(photo), "-s", "anything", "--method", "invert", "--amount", "1", "--json",
                 "-o", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "invert" and info["amount"] == 1.0
    src, res = np.asarray(Image.open(photo), dtype=int), np.asarray(Image.open(out), dtype=int)
    assert np.abs(res - (255 - src)).max() <= 1
    # its flag belongs to it: another method refuses it in one line, exit 2
    assert main(["stylize", str(photo), "-s", "x.jpg", "--method", "adain", "--amount", "1",
                 "-o", str(tmp_path / "o2.png")]) == 2
    assert "--amount: option(s) of --method invert, not adain" in capsys.readouterr().err
    assert not (tmp_path / "o2.png").exists()
