"""Datasets: offline ones load, image trees stream with the same result as in-memory data, data that is
not there fails with one line, and every model gets timm's own preprocessing."""

from __future__ import annotations

import importlib.util

import pytest

from helpers.cli import FAST, fail_in_one_line, run_cli


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_job_timed_in_openvino_then_evaluated_on_an_image_tree_finishes(digits_tree, tmp_path):
    """Loader workers forked from a process where OpenVINO had run crashed it (SIGSEGV): the whole
    sweep died without a FAILED run. The job runs in its own process here, as a user's would."""
    tree = ["dataset=imagefolder", f"dataset.root={digits_tree}", "dataset.num_workers=2"]
    r = run_cli(
        ["model=tiny_cnn", "pruner=dg_group", "model.train.epochs=1", *tree, *FAST]
        + ["measure.runtimes=[eager,openvino]", "measure.peak=false", "finetune.epochs=1"]
        + [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 finished" in r.stdout + r.stderr


# ---- unreadable files --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_job_on_a_tree_with_a_corrupt_image_finishes_and_says_so(
    corrupt_tree, compose, store, weights_cache, capsys, tmp_path, monkeypatch
):
    from mlflow.tracking import MlflowClient

    from sweep import job

    root, bad = corrupt_tree
    tree = ["dataset=imagefolder", f"dataset.root={root}", "dataset.num_workers=2"]
    cfg = compose(["model=tiny_cnn", "pruner=dg_group", f"tracking.uri={store}", *tree, *FAST])
    job.run_job(cfg)
    (run,) = MlflowClient(store).search_runs(["1"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["data_unreadable_files"] == "1"
    assert str(bad) in run.data.tags["data_unreadable_examples"]
    assert run.data.metrics["dense_accuracy_top1"] > 0.5
    capsys.readouterr()  # the job's own output
    elsewhere = tmp_path / "cli"  # a folder without the job's store
    elsewhere.mkdir()
    err = fail_in_one_line(
        ["model=tiny_cnn", *tree, "dataset.on_bad_file=error"], capsys, elsewhere, monkeypatch
    )
    assert f"unreadable image {bad}: truncated" in err
