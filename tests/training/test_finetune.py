"""Recovery fine-tuning after pruning, saved models, and the pretrained path with a local checkpoint."""

from __future__ import annotations


def test_divergence_rule():
    from sweep.training import TrainResult

    assert (
        TrainResult(
            steps=8, seconds=1.0, stopped_by="epochs", losses=[2.0] * 4 + [1.0] * 4
        ).diverged
        is False
    )
    assert (
        TrainResult(
            steps=8, seconds=1.0, stopped_by="epochs", losses=[2.0] * 4 + [9.0] * 4
        ).diverged
        is True
    )
    assert (
        TrainResult(
            steps=1, seconds=1.0, stopped_by="non_finite_loss", losses=[float("nan")]
        ).diverged
        is True
    )
    assert (
        TrainResult(steps=2, seconds=1.0, stopped_by="epochs", losses=[1.0, 5.0]).diverged is False
    )  # too short to tell
    # an iterative step's short fine-tuning from a low loss: noise below a uniform guess's loss
    rose = [0.08] * 5 + [0.12] * 5
    assert (
        TrainResult(
            steps=10, seconds=1.0, stopped_by="max_steps", losses=rose, chance_loss=2.3
        ).diverged
        is False
    )
    assert TrainResult(
        steps=10, seconds=1.0, stopped_by="max_steps", losses=[0.1] * 5 + [9.0] * 5, chance_loss=2.3
    ).diverged
    # a loss that blew up within the first steps and ended below their mean, far above a guess's
    blown = [0.5] + [4.1e7] * 4 + [6.9e5] * 5
    assert TrainResult(
        steps=10, seconds=1.0, stopped_by="epochs", losses=blown, chance_loss=2.3
    ).diverged
    assert TrainResult(
        steps=10, seconds=1.0, stopped_by="epochs", losses=blown[:1] + [3.0] * 9, chance_loss=2.3
    ).diverged
    # far above a guess's loss, even from a start above it
    assert TrainResult(
        steps=10, seconds=1.0, stopped_by="epochs", losses=[80.0] * 5 + [30.0] * 5, chance_loss=2.3
    ).diverged
    assert not TrainResult(
        steps=10, seconds=1.0, stopped_by="epochs", losses=[8.0] * 5 + [2.0] * 5, chance_loss=2.3
    ).diverged
