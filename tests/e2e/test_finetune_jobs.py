"""Recovery fine-tuning after pruning, saved models, and the pretrained path with a local checkpoint."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from helpers.cli import FAST
from helpers.runs import EXPERIMENT
from sweep import data, job, tracking
from sweep.training.evaluate import top1


def _run(store):
    (run,) = tracking.search_runs(store, EXPERIMENT)
    assert run.info.status == "FINISHED", run.data.tags.get("error")
    return run


def test_structural_pruning_recovers_with_finetuning(compose, store, weights_cache):
    cfg = compose(
        [
            "model=tiny_cnn",
            "pruner=dg_group",
            "ratio=0.5",
            "finetune.epochs=1",
            f"tracking.uri={store}",
            *FAST,
        ]
    )
    job.run_job(cfg)
    m = _run(store).data.metrics
    assert m["accuracy_top1_oneshot"] < m["dense_accuracy_top1"] - 0.3  # one-shot falls far
    assert m["accuracy_top1"] > m["accuracy_top1_oneshot"] + 0.3  # one epoch brings much of it back
    assert m["accuracy_delta"] == pytest.approx(m["accuracy_top1"] - m["dense_accuracy_top1"])
    assert m["finetune_steps"] == 23 and m["finetune_seconds"] > 0  # 1437 train images / 64
    assert m["stage_finetune_seconds"] >= m["finetune_seconds"]


def test_one_shot_is_the_default_and_says_so(compose, store, weights_cache):
    job.run_job(compose(["pruner=dg_group", f"tracking.uri={store}", *FAST]))
    run = _run(store)
    assert run.data.metrics["accuracy_top1"] == run.data.metrics["accuracy_top1_oneshot"]
    assert "finetune_seconds" not in run.data.metrics and run.data.params["finetune.epochs"] == "0"


def test_masks_stay_masks_while_finetuning(compose, store, weights_cache):
    cfg = compose(
        [
            "pruner=l1_unstructured",
            "ratio=0.7",
            "finetune.epochs=1",
            "finetune.max_steps=5",
            f"tracking.uri={store}",
            *FAST,
        ]
    )
    job.run_job(cfg)
    run = _run(store)
    m = run.data.metrics
    assert m["finetune_steps"] == 5 and run.data.tags["finetune_stopped_by"] == "max_steps"
    assert m["finetune_params_nonzero"] <= m["params_nonzero"] < 0.5 * m["dense_params_nonzero"]


def test_distillation_from_the_dense_model_runs(compose, store, weights_cache):
    cfg = compose(
        [
            "pruner=dg_magnitude",
            "finetune.epochs=1",
            "finetune.max_steps=3",
            "finetune.distill.weight=0.5",
            f"tracking.uri={store}",
            *FAST,
        ]
    )
    job.run_job(cfg)
    run = _run(store)
    assert (
        run.data.metrics["finetune_steps"] == 3
        and run.data.params["finetune.distill.weight"] == "0.5"
    )


def test_saved_model_reloads_with_the_same_top1(compose, store, weights_cache, tmp_path):
    cfg = compose(
        [
            "pruner=dg_group",
            "finetune.epochs=1",
            "finetune.max_steps=4",
            "save_model=true",
            "eval.max_samples=null",
            f"tracking.uri={store}",
            *FAST,
        ]
    )
    job.run_job(cfg)
    run = _run(store)
    # the one-liner the docs give (data.md, saved models)
    import mlflow

    from sweep.models.artifacts import load

    path = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model", tracking_uri=store, dst_path=str(tmp_path)
    )
    model = load(path)
    transform, _ = data.preprocessing(model, 32)
    acc = top1(model, data.Batches(data.Digits(), "eval", transform), 64, torch.device("cpu"))
    assert acc == pytest.approx(run.data.metrics["accuracy_top1"])
    assert sum(p.numel() for p in model.parameters()) == run.data.metrics["params_total"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 'pretrained' test_resnet with its 1000-class ImageNet head, saved as a local file."""
    torch.manual_seed(1)
    model = timm.create_model("test_resnet")
    path = tmp_path_factory.mktemp("ckpt") / "test_resnet.pth"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


@pytest.fixture(scope="module")
def synset_tree(tmp_path_factory):
    """Three ImageNet classes as an image tree (digits drawn as images)."""
    root = tmp_path_factory.mktemp("synsets")
    synsets = data.imagenet_synsets()
    items = data.Digits().items("eval")
    for i in range(len(items)):
        img, label = items[i]
        if label < 3:
            for split in ("train", "val"):
                folder = root / split / synsets[label * 100]
                folder.mkdir(parents=True, exist_ok=True)
                img.save(folder / f"{i}.png")
    return root


def _from_checkpoint(path, tree, store, *more):
    """tiny_cnn with a local checkpoint as its pretrained weights, on an image tree."""
    return [
        "model=tiny_cnn",
        "model.weights=pretrained",
        f"model.pretrained_file={path}",
        "dataset=imagefolder",
        f"dataset.root={tree}",
        "dataset.num_workers=0",
        f"tracking.uri={store}",
        *FAST,
        *more,
    ]


def test_pretrained_file_with_kept_head(compose, store, checkpoint, synset_tree, weights_cache):
    path, state = checkpoint
    cfg = compose(
        _from_checkpoint(
            path,
            synset_tree,
            store,
            "model.head=keep",
            "dataset.class_map=imagenet",
            "pruner=dg_group",
        )
    )
    job.run_job(cfg)
    run = _run(store)
    assert run.data.tags["weights"] == "pretrained" and "weights_note" not in run.data.tags
    assert run.data.params["model.head"] == "keep"
    # the kept head is ImageNet's: the counts include its 1000 outputs
    assert run.data.metrics["dense_params_total"] == sum(
        v.numel() for k, v in state.items() if "num_batches" not in k and "running" not in k
    )


def test_pretrained_file_with_fitted_head(compose, store, checkpoint, synset_tree, weights_cache):
    path, state = checkpoint
    cfg = compose(
        _from_checkpoint(
            path,
            synset_tree,
            store,
            "model.head=fit",
            "model.train.epochs=40",
            "model.train.lr=0.01",
            "pruner=l1_unstructured",
        )
    )
    from sweep.models import weights

    model, source, _ = weights.build_start(cfg.model, 3, 0)
    assert source == "pretrained" and model.get_classifier().out_features == 3
    for k, v in model.state_dict().items():  # the backbone is the file's, the head is new
        if not k.startswith("fc."):
            assert torch.equal(v, state[k]), k
    job.run_job(cfg)
    run = _run(store)
    assert run.data.metrics["dense_accuracy_top1"] > 0.6  # a linear probe on 3 classes, not chance
    assert (
        run.data.params["weights.cache_path"].endswith(".pt")
        and "-fit-" in run.data.params["weights.cache_path"]
    )


def test_diverged_fine_tuning_is_flagged_and_kept_out_of_the_ranking(compose, store, weights_cache):
    """A loss that goes NaN ends fine-tuning at once, flags the run, and the report lists it apart."""
    from sweep import report
    from sweep.report import rows

    common = ["finetune.epochs=1", "sweep_id=diverged", f"tracking.uri={store}", *FAST]
    job.run_job(compose(["pruner=dg_group", "ratio=0.5", *common]))
    job.run_job(
        compose(
            [
                "pruner=dg_group",
                "pruner._target_=helpers.pruners.PoisonsFineTuning",
                "pruner.name=poisons",
                "ratio=0.5",
                *common,
            ]
        )
    )
    runs = {r.data.params["pruner"]: r for r in tracking.search_runs(store, EXPERIMENT)}
    bad, good = runs["poisons"], runs["dg_group"]
    assert bad.info.status == "FINISHED"
    assert bad.data.tags["finetune_diverged"] == "true"
    assert bad.data.tags["finetune_stopped_by"] == "non_finite_loss"
    assert bad.data.metrics["finetune_steps"] == 1
    assert good.data.tags["finetune_diverged"] == "false"
    assert good.data.metrics["finetune_loss_end"] < good.data.metrics["finetune_loss_start"]
    assert good.data.tags["pruned_at_chance"] == "false"
    doc = report.render(rows.load_sweep(store, EXPERIMENT, "diverged"), {})
    assert "fine-tuning diverged" in doc.split("## Matched cost")[1]
    summary = doc.split("## Summary")[1].split("## Original")[0]
    assert "tiny_cnn/poisons/0.5/ft1" in summary and "poisons:" not in summary
    assert "| tiny_cnn | MACs ≈ 30 % | dg_group (ratio 0.5): " in summary


def test_a_loss_that_blew_up_without_going_nan_is_flagged(compose, store, weights_cache):
    """A learning rate far too high: the loss jumps to millions within the first steps and ends below
    that but far above a uniform guess's loss, never NaN."""
    cfg = ["pruner=dg_group", "ratio=0.3", "finetune.epochs=1", "finetune.lr=1000"]
    job.run_job(compose([*cfg, f"tracking.uri={store}", *FAST]))
    (run,) = tracking.search_runs(store, EXPERIMENT)
    m, t = run.data.metrics, run.data.tags
    assert t["finetune_stopped_by"] != "non_finite_loss", m["finetune_loss_end"]
    assert m["finetune_loss_end"] > 10 * math.log(10) > m["finetune_loss_first"]
    assert t["finetune_diverged"] == "true"
