"""One job in-process (build -> weights -> prune -> measure -> evaluate -> log) against a tmp MLflow store."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from helpers.cli import FAST
from helpers.runs import EXPERIMENT, runs_of
from sweep import job, tracking


def test_job_logs_the_schema(compose, store, weights_cache):
    cfg = compose(
        [
            "model=tiny_cnn",
            "pruner=dg_group",
            "ratio=0.5",
            f"tracking.uri={store}",
            "sweep_id=unit",
            *FAST,
        ]
    )
    job.run_job(cfg)
    (run,) = runs_of(store)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tiny_cnn/dg_group/0.5"
    m, p, t = run.data.metrics, run.data.params, run.data.tags
    for name in tracking.REQUIRED_METRICS:
        assert name in m, name
    for name in tracking.METRICS_PER_MODEL:
        assert name in m and tracking.DENSE_PREFIX + name in m, name
    assert m["speedup"] == pytest.approx(m["dense_latency_ms"] / m["latency_ms"], rel=1e-6)
    assert 10 < m["process_rss_mb"] < 100_000  # MiB, at the job's start
    # the model's own preprocessing (test_resnet's mean/std), at the config's input size
    assert p["data.input_size"] == "(3, 32, 32)" and p["data.mean"] == "(0.5, 0.5, 0.5)"
    assert m["params_total"] < m["dense_params_total"] and m["macs"] < m["dense_macs"]
    assert m["dense_accuracy_top1"] >= 0.9  # trained on digits, not an untrained head
    assert (
        p["model"] == "tiny_cnn" and p["model_name"] == "test_resnet" and p["pruner"] == "dg_group"
    )
    assert float(p["ratio"]) == 0.5 and p["dataset"] == "digits" and "measure.iters_used" in p
    assert t["sweep_id"] == "unit" and t["weights"] == "trained" and t["noop"] == "false"
    assert t["accuracy_at_chance"] == "false" and t["pruning_kind"] == "structural"
    assert t["dense_speedup_possible"] == "true"
    for tag in ("device", "git_commit", *tracking.TAG_VERSIONS):
        assert t.get(tag), tag
    # every name the job logged is one the schema (sweep.tracking.names) describes
    config_keys = set(tracking.flatten(OmegaConf.to_container(cfg, resolve=True)))
    for kind, logged in (("param", p), ("metric", m), ("tag", t)):
        unknown = [
            k
            for k in logged
            if not k.startswith("mlflow.") and not tracking.describes(kind, k, config_keys)
        ]
        assert unknown == [], f"{kind}s missing from sweep/tracking/names.py"
    assert not tracking.describes("metric", "dense_no_such_metric")


def test_unstructured_run_says_no_dense_speedup(compose, store, weights_cache):
    job.run_job(
        compose(["pruner=global_unstructured", "ratio=0.7", f"tracking.uri={store}", *FAST])
    )
    (run,) = runs_of(store)
    assert run.data.tags["dense_speedup_possible"] == "false"
    assert run.data.metrics["sparsity"] == pytest.approx(0.7, abs=0.01)
    assert run.data.metrics["params_nonzero"] < run.data.metrics["dense_params_nonzero"]


def test_noop_pruner_is_flagged(compose, store, weights_cache):
    cfg = compose(
        [
            "pruner=dg_group",
            "pruner._target_=helpers.pruners.DoNothing",
            "pruner.name=do_nothing",
            "~pruner.importance",
            "~pruner.global_pruning",
            f"tracking.uri={store}",
            *FAST,
        ]
    )
    job.run_job(cfg)
    (run,) = runs_of(store)
    assert run.data.tags["noop"] == "true"


def test_random_weights_are_flagged_at_chance(compose, store, weights_cache):
    cfg = compose(["model=tiny_cnn", "model.train.epochs=0", f"tracking.uri={store}", *FAST])
    job.run_job(cfg)
    (run,) = runs_of(store)
    assert run.data.tags["weights"] == "random"
    assert run.data.tags["accuracy_at_chance"] == "true"


def test_offline_pretrained_with_fit_head_is_not_dressed_up(
    compose, store, monkeypatch, weights_cache
):
    """No pretrained weights: the run says so, the head is not probed on random features, and its
    accuracy is flagged as chance."""
    from sweep.models import weights

    monkeypatch.setattr(weights, "_HUB_REACHABLE", False)
    monkeypatch.setattr(weights, "_cached_hub_file", lambda name: None)
    cfg = compose(
        [
            "model=tiny_cnn",
            "model.weights=pretrained",
            "model.head=fit",
            f"tracking.uri={store}",
            *FAST,
        ]
    )
    job.run_job(cfg)
    (run,) = runs_of(store)
    t = run.data.tags
    assert t["weights"] == "random" and t["weights_note"].endswith("head not fitted")
    assert t["accuracy_at_chance"] == "true" and "weights.cache_path" not in run.data.params


def test_target_job_logs_what_was_asked_and_what_was_reached(compose, store, weights_cache):
    cfg = compose(
        ["model=tiny_cnn", "pruner=dg_group", "target.macs=0.5", f"tracking.uri={store}", *FAST]
    )
    job.run_job(cfg)
    (run,) = runs_of(store)
    m, p, t = run.data.metrics, run.data.params, run.data.tags
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny_cnn/dg_group/macs=0.5"
    assert t["target"] == "macs=0.5" and p["target.macs"] == "0.5"
    assert m["target_asked"] == 0.5 and m["target_reached"] == 1.0 and m["target_trials"] >= 1
    assert m["macs"] / m["dense_macs"] == pytest.approx(m["target_value"])
    assert m["macs_reduction"] == pytest.approx(0.5, abs=0.02)
    assert "ratio" not in p and 0 < m["ratio_used"] < 1  # searched, not the config's ratio


def test_calibration_comes_from_the_train_split(compose, store, weights_cache, monkeypatch):
    from sweep import data
    from sweep.pruners import importance

    calls = []
    real = importance.Taylor.calibrate

    def record(self, model, calibration):
        calls.append(list(calibration.batches))
        return real(self, model, calibration)

    monkeypatch.setattr(importance.Taylor, "calibrate", record)
    cfg = compose(["model=tiny_cnn", "pruner=dg_taylor", f"tracking.uri={store}", *FAST])
    job.run_job(cfg)
    (run,) = runs_of(store)
    # the preflight's trial prune (noise, no split read), then the prune of the job
    assert len(calls) == 2
    preflight, seen = calls
    splits = {key[1]: xy for key, xy in data.batches._PREPARED.items() if "digits" in key[0]}
    for x, _ in preflight:
        for img in x:
            assert not any((xy[0] == img).flatten(1).all(dim=1).any() for xy in splits.values())
    assert len(seen) == cfg.pruner.calibration_batches
    assert run.data.params["pruner.calibration_samples"] == str(sum(len(y) for _, y in seen))
    (train_x, train_y), (eval_x, _) = splits["train"], splits["eval"]
    in_eval = 0
    for x, y in seen:
        for img, label in zip(x, y):
            hits = (train_x == img).flatten(1).all(dim=1).nonzero().flatten()
            assert len(hits) and label in train_y[hits], "a calibration image is not a train image"
            in_eval += int((eval_x == img).flatten(1).all(dim=1).any())
    assert in_eval <= 0.1 * sum(len(y) for _, y in seen)  # digits has a few duplicates, no more


def test_layers_kept_whole_are_tagged_and_reported(compose, store, weights_cache):
    """BEiT's residual width cannot be pruned by the library (qkv runs through F.linear): the job
    prunes the rest, and the run says which layers it left whole."""
    cfg = compose(
        [
            "model=tiny_vit",
            "model.name=beit_base_patch16_224",
            "model.train.epochs=0",
            "+model.kwargs.embed_dim=32",
            "+model.kwargs.depth=1",
            "+model.kwargs.num_heads=2",
            "pruner=dg_group",
            f"tracking.uri={store}",
            *FAST,
        ]
    )
    job.run_job(cfg)
    (run,) = runs_of(store)
    assert run.info.status == "FINISHED"
    kept = run.data.tags[tracking.TAG_KEPT_DENSE]
    assert kept and "*" in kept
    assert run.data.metrics["macs"] < run.data.metrics["dense_macs"]
    from sweep.report import cells, rows

    (row,) = rows.load_sweep(store, EXPERIMENT, None).runs
    assert f"kept whole: {kept}" in cells.flags(row)


def test_failing_job_is_recorded_failed_and_keeps_what_it_logged(compose, store, weights_cache):
    cfg = compose(
        [
            "pruner=dg_group",
            "pruner._target_=helpers.pruners.Explodes",
            "pruner.name=explodes",
            "~pruner.importance",
            "~pruner.global_pruning",
            f"tracking.uri={store}",
            *FAST,
        ]
    )
    result = job.run_job_isolated(cfg)
    assert result["status"] == "FAILED"
    (run,) = runs_of(store)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("RuntimeError: cannot prune ResNet")
    assert "stage_weights_seconds" in run.data.metrics  # stages before the failure stay logged
    from mlflow.tracking import MlflowClient

    files = [f.path for f in MlflowClient(store).list_artifacts(run.info.run_id)]
    assert "traceback.txt" in files


def test_unreachable_target_is_a_clear_failed_run(compose, store, weights_cache):
    cfg = compose(
        ["model=tiny_cnn", "pruner=semi_2_4", "target.params=0.3", f"tracking.uri={store}", *FAST]
    )
    result = job.run_job_isolated(cfg)
    assert result["status"] == "FAILED" and result["not_applicable"]
    (run,) = runs_of(store)
    t = run.data.tags
    assert run.info.status == "FAILED" and t["not_applicable"] == "true"
    assert t["error"].startswith("TargetNotReached: target params=0.3 is out of reach")
    assert run.data.metrics["target_reached"] == 0.0


def test_method_that_cannot_apply_stops_before_training(compose, store, weights_cache):
    cfg = compose(["model=tiny_vit", "pruner=dg_bn_scale", f"tracking.uri={store}", *FAST])
    result = job.run_job_isolated(cfg)
    assert result["status"] == "FAILED" and result["not_applicable"]
    (run,) = runs_of(store)
    assert run.data.tags["error"].startswith("NotApplicable: BN-scale needs BatchNorm layers")
    assert "stage_weights_seconds" not in run.data.metrics  # refused before any training
