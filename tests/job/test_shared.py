"""Shared dense work: a figure computed once is read back only for the same inputs."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from sweep.job import shared


def _job(compose, tmp_path, *overrides):
    cfg = compose(["model=tiny_cnn", f"weights.cache_dir={tmp_path}", "sweep_id=s", *overrides])
    return SimpleNamespace(cfg=cfg, device=torch.device("cpu"), class_map=None)


def test_a_dense_top1_is_reused_only_for_the_same_inputs(compose, tmp_path):
    calls = []

    def top1(job, weights="trained|a.pt|1:2", n=100):
        def compute():
            calls.append(1)
            return 0.5 + len(calls) / 100

        return shared.dense_top1(
            job, weights_id=weights, preprocess={"input_size": [3, 32, 32]}, n=n, compute=compute
        )

    base = _job(compose, tmp_path)
    first, reused = top1(base)
    assert not reused and top1(base) == (first, True) and len(calls) == 1
    # another eval size, other weights, another split, another eval batch, another seed: computed
    changed = [
        top1(base, n=200),
        top1(base, weights="trained|a.pt|1:3"),
        top1(_job(compose, tmp_path, "dataset.eval_fraction=0.3")),
        top1(_job(compose, tmp_path, "eval.batch_size=32")),
        top1(_job(compose, tmp_path, "seed=1")),
    ]
    assert [r for _, r in changed] == [False] * 5 and len(calls) == 6
    assert len({v for v, _ in changed} | {first}) == 6


def test_the_eval_count_is_decided_once_per_sweep_and_model(compose, tmp_path):
    job = _job(compose, tmp_path)
    assert shared.eval_count(job, 360, lambda: 74) == (74, False)
    assert shared.eval_count(job, 360, lambda: 100) == (74, True)  # every method: the same images
    other = _job(compose, tmp_path, "sweep_id=t")
    assert shared.eval_count(other, 360, lambda: 100) == (100, False)


def test_the_built_model_is_copied_for_each_job(compose, monkeypatch):
    monkeypatch.setattr(shared, "_LAST_BUILT", {})  # not what an earlier test of this process built
    cfg = compose(["model=tiny_cnn"])
    built = []

    def build():
        built.append(torch.nn.Linear(2, 2))
        return built[-1], "random", ""

    a, _, _ = shared.dense_start(cfg, 10, build)
    b, _, _ = shared.dense_start(cfg, 10, build)
    assert len(built) == 1 and a is not b and a is not built[0]
    assert torch.equal(a.weight, b.weight)
    shared.dense_start(compose(["model=tiny_cnn", "seed=1"]), 10, build)
    assert len(built) == 2  # another seed: another init
