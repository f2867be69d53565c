"""Every hook the job calls on a pruner is declared on `Pruner`, with a default (a user's method
overrides only what it changes; tests/e2e/test_user_pruner.py runs such methods through a job)."""

from __future__ import annotations

from sweep.pruners import Pruner


def test_every_hook_the_job_calls_is_declared_on_the_base_class():
    for hook in ("check", "prune", "schedule", "refine", "regularizing", "accelerate"):
        assert callable(getattr(Pruner, hook))
    for attr in ("regularize", "kept_dense", "calibration_batches", "refines", "accelerates"):
        assert hasattr(Pruner, attr)
