"""Saved models load without running code and give the same outputs: safetensors + structure.json."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from helpers.models import TINY, tiny_input, tiny_model
from sweep.config import config_dir
from sweep.errors import SweepConfigError
from sweep.models import artifacts


def _pruned(alias: str, pruner: str, ratio: float = 0.5):
    dense = tiny_model(alias)
    x = tiny_input(alias, 8)
    method = instantiate(OmegaConf.load(config_dir() / "pruner" / f"{pruner}.yaml"))
    method.check(dense, TINY[alias]["name"], x[:1])
    torch.manual_seed(0)
    model = method.prune(copy.deepcopy(dense), ratio, x[:1]).eval()
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in dense.parameters())
    return model, x


@pytest.mark.parametrize(
    "alias,pruner",
    [("tiny_cnn", "dg_group"), ("tiny_vit", "dg_group"), ("tiny_vit", "attn_heads")],
)
def test_pruned_model_reloads_with_the_same_outputs_and_top1(alias, pruner, tmp_path):
    model, x = _pruned(alias, pruner)
    create = {"num_classes": 10, **(TINY[alias].get("kwargs") or {})}
    artifacts.save(model, tmp_path / "model", TINY[alias]["name"], create)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        artifacts.WEIGHTS_FILE,
        artifacts.STRUCTURE_FILE,
    ]
    again = artifacts.load(tmp_path / "model")
    with torch.no_grad():
        want, got = model(x), again(x)
    assert torch.equal(want, got)
    labels = torch.randint(0, 10, (len(x),), generator=torch.Generator().manual_seed(0))
    assert (got.argmax(1) == labels).float().mean() == (want.argmax(1) == labels).float().mean()
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in model.parameters())


def test_a_pickled_model_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save(tiny_model("tiny_cnn"), folder / "pruned.pt")
    with pytest.raises(SweepConfigError) as e:
        artifacts.load(folder)
    said = str(e.value)
    assert said.startswith(f"refused to load {folder / 'pruned.pt'}: a pickled model runs")
    assert "\n" not in said
    with pytest.raises(SweepConfigError, match="refused to load"):
        artifacts.load(folder / "pruned.pt")


def test_structure_is_json_and_weights_are_not_pickled(tmp_path):
    model, _ = _pruned("tiny_cnn", "dg_group")
    artifacts.save(model, tmp_path, "test_resnet", {"num_classes": 10})
    weights = (tmp_path / artifacts.WEIGHTS_FILE).read_bytes()
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(weights)
    import json

    info = json.loads((tmp_path / artifacts.STRUCTURE_FILE).read_text())
    assert info["format"] == artifacts.FORMAT and info["timm_name"] == "test_resnet"
    assert info["tensors"]["fc.weight"][0] == 10


def test_not_a_saved_model_says_so(tmp_path):
    with pytest.raises(SweepConfigError, match="has no structure.json"):
        artifacts.load(tmp_path)
    with pytest.raises(SweepConfigError, match="does not exist"):
        artifacts.load(tmp_path / "nothing")
