"""timm's published pruned architectures as a method (`timm_published`) and as a cost
(`target.macs=published`): the published architecture is the pruned model; every other method of a grid
is pruned to its MACs; a model without one is refused in one line."""

from __future__ import annotations

import pytest
import timm
import torch

from helpers.cli import FAST
from helpers.runs import EXPERIMENT
from sweep import tracking
from sweep.config import register_timm_model
from sweep.errors import NotApplicable, SweepConfigError
from sweep.pruners.published import PUBLISHED, TimmPublished, published_of
from sweep.targets import published


def test_every_published_variant_is_a_timm_model():
    assert set(PUBLISHED.values()) == set(timm.list_models("*_pruned"))
    assert published_of("efficientnet_b1.ft_in1k") == "efficientnet_b1_pruned"
    assert published_of("efficientnet_b0") is None


def test_the_pruned_model_is_the_published_architecture():
    dense = timm.create_model("efficientnet_b1", num_classes=7).eval()
    method = TimmPublished("timm_published")
    method.check(dense, "efficientnet_b1")
    pruned = method.prune(dense, 0.3, torch.zeros(1, 3, 64, 64))
    assert pruned.pretrained_cfg["architecture"] == "efficientnet_b1_pruned"
    assert pruned.num_classes == 7 and not pruned.training
    dense_params = sum(p.numel() for p in dense.parameters())
    assert sum(p.numel() for p in pruned.parameters()) < dense_params


def test_a_model_without_a_published_variant_is_refused_with_the_list():
    with pytest.raises(
        NotApplicable, match=r"^timm publishes no pruned variant of resnet18; .*ecaresnet50d"
    ):
        TimmPublished("timm_published").check(torch.nn.Linear(2, 2), "resnet18")


def test_target_macs_published_is_the_published_fraction(compose):
    kept = published.macs_kept("ecaresnet50d", None)
    assert 0.4 < kept < 0.75  # Knapsack pruning's ecaresnet50d: about 0.58 of the MACs
    register_timm_model("ecaresnet50d")  # as `model=<timm name>` on the command line
    cfg = published.resolve(compose(["model=ecaresnet50d", "target.macs=published"]))
    assert cfg.target.macs == kept
    assert published.resolve(compose(["model=tiny_cnn", "target.macs=0.5"])).target.macs == 0.5
    bad = compose(["model=tiny_cnn", "target.macs=published"])
    with pytest.raises(SweepConfigError, match=r"^target.macs=published: timm publishes no pruned"):
        published.check(bad)


@pytest.mark.slow
def test_a_method_beside_the_published_architecture_at_its_cost(compose, store):
    from sweep import job

    register_timm_model("efficientnet_b1")
    common = ["model=efficientnet_b1", "model.weights=random", "model.head=finetune"]
    common += ["model.train.epochs=0", "target.macs=published", "dataset=synthetic"]
    common += [
        "finetune.epochs=0",
        "eval.max_samples=16",
        "measure.peak=false",
        f"tracking.uri={store}",
    ]
    for method in ("timm_published", "dg_group"):
        job.run_job(compose([f"pruner={method}", *common, *FAST]))
    runs = {r.data.params["pruner"]: r for r in tracking.search_runs(store, EXPERIMENT)}
    want = published.macs_kept("efficientnet_b1", None)
    for method, run in runs.items():
        m = run.data.metrics
        assert run.info.status == "FINISHED", method
        assert run.data.tags["target_source"] == "published"
        assert abs(m["macs"] / m["dense_macs"] - want) <= 0.02, method
    assert runs["timm_published"].data.tags["pruning_family"] == "published"
