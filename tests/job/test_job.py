"""One job in-process (build -> weights -> prune -> measure -> evaluate -> log) against a tmp MLflow store."""

from __future__ import annotations


def test_offline_pretrained_falls_back_to_random_without_a_download(compose, monkeypatch):
    """Offline, the hub probe fails once and timm's download (about a minute of retries) never starts."""
    import time

    from helpers.servers import free_port
    from sweep import models
    from sweep.models import weights

    monkeypatch.setattr(weights, "_HUB_REACHABLE", None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setattr(weights, "_cached_hub_file", lambda name: None)
    real_build = models.build_model

    def build(name, num_classes, kwargs=None, pretrained=False, pretrained_file=None):
        assert not pretrained, "a download was attempted although the hub is unreachable"
        return real_build(name, num_classes, kwargs)

    monkeypatch.setattr(weights, "build_model", build)
    cfg = compose(["model=tiny_cnn", "model.weights=pretrained"])
    t0 = time.perf_counter()
    model, source, note = weights.build_start(cfg.model, 10, 0)
    assert source == "random" and "unreachable" in note
    assert weights._HUB_REACHABLE is False
    assert time.perf_counter() - t0 < 20  # generous: timm's own retries take about a minute


def test_keys_added_later_leave_old_jobs_identity_alone(compose):
    """A sweep resumed across an upgrade finds the jobs it finished: a config key added later is out
    of the job's identity at its default, and in it otherwise."""
    from sweep.job import job_key
    from sweep.job.identity import LATER_KEYS

    base = compose(["sweep_id=x"])
    assert base.prune.round_to is None and base.target.runtime == "eager"
    assert base.quantize.precision == "none"
    assert set(LATER_KEYS) == {
        "prune.round_to",
        "target.runtime",
        "quantize.precision",
        "quantize.calibration_samples",
        "quantize.runtimes",
        "measure.interleave",
        "measure.block_ms",
        "measure.contention_max",
        "measure.instances",
        "measure.run_to_run_cv",
        "measure.profile",
        "log_models",
        "finetune.eval_every",
    }
    for later in (
        "prune.round_to=16",
        "target.runtime=onnxruntime",
        "quantize=int8",
        "quantize.calibration_samples=64",
        "quantize.runtimes=[eager]",
        "measure.interleave=call",
        "measure.block_ms=20",
        "measure.contention_max=0.5",
        "measure.run_to_run_cv=0",
        "measure.profile=false",
        "log_models=[onnx]",
        "finetune.eval_every=0",
    ):
        assert job_key(compose(["sweep_id=x", later])) != job_key(base), later
    # the previous release's key of this config (computed with it): unchanged
    assert job_key(base) == "31c6f910c6afaa248082"
