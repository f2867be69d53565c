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


def _two_layers(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))


def test_a_batch_in_parts_makes_the_whole_batch_step():
    """Gradients accumulated over parts of the batch (uneven ones too) make the optimizer step the
    whole batch makes, distilled or not; no forward pass sees more than the part."""
    import copy

    import torch

    from sweep.training import Budget, Distill
    from sweep.training.loops import _optimizer, _step

    torch.manual_seed(1)
    x, y = torch.randn(10, 6), torch.randint(0, 4, (10,))
    budget = Budget(epochs=1, lr=1e-2, batch_size=10)
    for distill in (None, Distill(_two_layers(seed=7), weight=0.5, temperature=2.0)):
        models, losses, seen = [], [], []
        for micro in (None, 4, 1):
            model = _two_layers()
            hook = model.register_forward_pre_hook(
                lambda m, args, seen=seen: seen.append(len(args[0]))
            )
            opt, sched = _optimizer(model, budget, samples=10)
            losses.append(_step(model, opt, sched, x, y, copy.deepcopy(distill), [], micro=micro))
            hook.remove()
            models.append(model)
        assert seen == [10, 4, 4, 2, *[1] * 10]
        assert all(abs(v - losses[0]) < 1e-5 for v in losses)
        for other in models[1:]:
            for a, b in zip(other.parameters(), models[0].parameters()):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_batchnorm_statistics_move_per_step_as_with_the_whole_batch():
    """A step in 4 parts updates BatchNorm's running statistics 4 times, each with a momentum that
    keeps (1 - m) of the old statistics over the whole step; the momentum is restored after it."""
    import torch

    from sweep.training import Budget
    from sweep.training.loops import _optimizer, _step

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 4)
    )
    bn = model[1]
    x, y = torch.randn(16, 6) + 5.0, torch.randint(0, 4, (16,))  # means far from the start's 0
    opt, sched = _optimizer(model.train(), Budget(epochs=1, lr=0.0, batch_size=16), samples=16)
    _step(model, opt, sched, x, y, None, [], micro=4)
    assert bn.momentum == 0.1 and int(bn.num_batches_tracked) == 4
    with torch.no_grad():
        means = model[0](x).reshape(4, 4, 8).mean(1)  # each part's batch mean (lr 0: no update)
    m = 1 - 0.9 ** (1 / 4)
    want = torch.zeros(8)
    for part in means:
        want = (1 - m) * want + m * part
    torch.testing.assert_close(bn.running_mean, want)
    # as far from the start as one whole-batch update: 0.9 of the old statistics kept
    torch.testing.assert_close(bn.running_mean, 0.1 * means.mean(0), rtol=0.05, atol=0.05)
