"""Per-job limits: a job over its time or memory limit ends FAILED naming the stage and the limit, and
the sweep goes on."""

import time

import pytest

from helpers.cli import FAST, run_cli
from helpers.runs import EXPERIMENT
from sweep import job, limits, tracking
from sweep.errors import NotApplicable


@pytest.mark.slow
def test_a_hanging_stage_fails_and_the_sweep_goes_on(tmp_path, weights_cache, empty_store):
    store = empty_store(tmp_path / "mlflow.db")
    t0 = time.monotonic()
    r = run_cli(
        [
            "-m",
            "model=tiny_cnn",
            "pruner=l1_unstructured",
            "pruner._target_=helpers.pruners.Sleeps,helpers.pruners.SleepsInCheck,sweep.pruners.torch_prune.L1Unstructured",
            "job.stage_timeout_s.prune=3",
            f"tracking.uri={store}",
            *FAST,
        ],
        cwd=tmp_path,
    )
    assert time.monotonic() - t0 < 300  # not the sleeper's 600 s
    runs = {x.data.params["pruner._target_"]: x for x in tracking.search_runs(store, EXPERIMENT)}
    assert r.returncode == 1, r.stderr[-3000:]
    assert "job.stage_timeout_s.prune=3s" in r.stdout
    hung = runs["helpers.pruners.Sleeps"]
    assert hung.info.status == "FAILED"
    assert hung.data.tags[tracking.TAG_LIMIT] == "prune:timeout"
    assert (
        "LimitExceeded: stage prune ran past job.stage_timeout_s.prune=3s"
        in hung.data.tags[tracking.TAG_ERROR]
    )
    # stopped before measuring, and kept what it had logged
    assert "dense_params_total" not in hung.data.metrics
    assert "stage_weights_seconds" in hung.data.metrics
    # a preflight check that hangs is held to the prune stage's limit too, before any training
    checked = runs["helpers.pruners.SleepsInCheck"]
    assert checked.info.status == "FAILED"
    assert checked.data.tags[tracking.TAG_LIMIT] == "preflight:timeout"
    assert "stage_weights_seconds" not in checked.data.metrics
    nxt = runs["sweep.pruners.torch_prune.L1Unstructured"]
    assert nxt.info.status == "FINISHED"


def _per_image_for(images: int) -> float:
    """A per-image count under which `images` images of fine-tuning just fit this machine (the job's
    start and a tiny model's weights are small against it)."""
    from sweep.provenance import rss_mb

    room = 0.9 * limits.physical_memory_mb() - rss_mb()
    return room / limits.TRAINING_HEADROOM / (images + 0.5)


def test_a_batch_that_does_not_fit_trains_in_parts(compose, store, weights_cache, monkeypatch):
    """Counted before training, fine-tuning's batch of 128 does not fit (the dense model's training
    at 64 does): the job trains it in parts of the largest size that fits (logged), its gradient
    criterion reads at most 4 images at once, and each stage's peak memory is logged."""
    from sweep.job import build

    monkeypatch.setattr(build, "activation_mb", lambda model, example: _per_image_for(100))
    seen: list[int] = []
    train = job.finetune.training.train

    def spying(model, *args, **kwargs):
        if "fine-tune" not in kwargs.get("label", ""):
            return train(model, *args, **kwargs)
        hook = model.register_forward_pre_hook(lambda m, a: seen.append(len(a[0])))
        try:
            return train(model, *args, **kwargs)
        finally:
            hook.remove()

    monkeypatch.setattr(job.finetune.training, "train", spying)
    overrides = ["model=tiny_cnn", "pruner=dg_taylor", "finetune.epochs=1", "finetune.max_steps=2"]
    job.run_job(compose([*overrides, "finetune.batch_size=128", f"tracking.uri={store}", *FAST]))
    (run,) = tracking.search_runs(store, EXPERIMENT)
    p, m = run.data.params, run.data.metrics
    assert run.info.status == "FINISHED"
    micro = int(p[tracking.PARAM_FINETUNE_MICRO_BATCH])
    assert 90 <= micro <= 100  # the job's own start and the weights are counted too
    assert seen == [micro, 128 - micro] * 2  # two optimizer steps, each over the whole batch
    assert int(p[tracking.PARAM_CALIBRATION_MICRO_BATCH]) == 4
    limit_mb = float(p[tracking.PARAM_MEMORY_USED]) * limits.GIB
    for stage in ("build", "prune", "measure", "evaluate", "finetune"):
        assert 0 < m[tracking.STAGE_PEAK_METRIC.format(stage)] < limit_mb + 100, stage


def test_a_stage_that_cannot_fit_one_image_is_refused_before_training(
    compose, store, weights_cache, monkeypatch
):
    from sweep.job import build

    monkeypatch.setattr(build, "activation_mb", lambda model, example: _per_image_for(0.4))
    overrides = ["model=tiny_cnn", "pruner=dg_group", "finetune.epochs=1"]
    cfg = compose([*overrides, f"tracking.uri={store}", *FAST])
    with pytest.raises(NotApplicable, match=r"finetune\.batch_size=64 needs .* even one image"):
        job.run_job(cfg)
    (run,) = tracking.search_runs(store, EXPERIMENT)
    assert "stage_finetune_seconds" not in run.data.metrics
    assert "stage_weights_seconds" not in run.data.metrics  # refused while building
