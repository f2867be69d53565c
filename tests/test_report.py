"""The benchmark document, from a store filled through the project's own tracking code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.runs import log_fake_run
from sweep import report

EXPECTED = Path(__file__).parent / "data" / "expected_report.md"


@pytest.fixture
def filled(store):
    for pruner in ("l1_unstructured", "dg_group"):
        log_fake_run(
            store,
            "s1",
            "c",
            pruner,
            0.5,
            latency=(17.0, 16.9),
            acc=(0.1, 0.09),
            params=(196_245_706, 98_000_000),
            chance=True,
            epochs=1,
        )
    log_fake_run(
        store, "s1", "tiny_cnn", "l1_unstructured", 0.5, latency=(2.0, 2.1), epochs=1, oneshot=0.6
    )
    log_fake_run(
        store,
        "s1",
        "tiny_cnn",
        "dg_group",
        0.5,
        noop=True,
        latency=(2.0, 2.0),
        params=(1000, 1000),
        epochs=1,
    )
    log_fake_run(store, "s1", "tiny_vit", "l1_unstructured", 0.5, epochs=1, oneshot=0.25)
    log_fake_run(
        store, "s1", "tiny_vit", "dg_group", 0.5, fail="cannot prune this\nsecond line", epochs=1
    )
    return store


def test_report_matches_expected_document(filled, tmp_path):
    path = report.write_report(filled, "pruning-sweep", "s1", tmp_path / "out")
    doc = path.read_text()
    if os.environ.get("SWEEP_UPDATE_EXPECTED"):
        EXPECTED.write_text(doc)
        pytest.fail(
            f"{EXPECTED.name} rewritten: review its diff, then run again without SWEEP_UPDATE_EXPECTED"
        )
    assert doc == EXPECTED.read_text()


def test_report_is_deterministic_and_honest(filled, tmp_path):
    a = report.write_report(filled, "pruning-sweep", None, tmp_path / "a").read_text()
    b = report.write_report(filled, "pruning-sweep", "s1", tmp_path / "b").read_text()
    assert a == b  # the newest sweep is s1
    assert "## Original (not pruned)" in a
    assert "c: 196,245,706 params, 17.00ms, 10.0% (accuracy at chance)" in a
    assert "tiny_cnn: NO-OP: pruning changed nothing, not a result" in a
    assert "tiny_vit: FAILED: RuntimeError: cannot prune this" in a
    assert "n/a (masks)" in a and "0.95x" not in a  # a mask's slower latency is not a "speedup"
    for png in ("accuracy_vs_macs.png", "accuracy_vs_latency.png", "speedup_vs_ratio.png"):
        assert (tmp_path / "a" / "s1" / png).stat().st_size > 1000
        assert f"]({png})" in a


def test_missing_grid_points_are_shown(store, tmp_path):
    log_fake_run(store, "s2", "c", "l1_unstructured", 0.3)
    log_fake_run(store, "s2", "m", "dg_group", 0.3)
    doc = report.write_report(store, "pruning-sweep", "s2", tmp_path).read_text()
    assert "m: MISSING: no run logged for this grid point" in doc
    assert "c: MISSING: no run logged for this grid point" in doc


def test_baseline_lists_regressions(store, tmp_path):
    log_fake_run(store, "old", "c", "dg_group", 0.5, latency=(10.0, 5.0), acc=(0.9, 0.85))
    log_fake_run(store, "old", "e", "dg_group", 0.5, latency=(10.0, 5.0), acc=(0.9, 0.85))
    log_fake_run(store, "new", "c", "dg_group", 0.5, latency=(10.0, 6.0), acc=(0.9, 0.80))
    log_fake_run(store, "new", "e", "dg_group", 0.5, latency=(10.0, 5.1), acc=(0.9, 0.85))
    doc = report.write_report(store, "pruning-sweep", "new", tmp_path, baseline="old").read_text()
    section = doc.split("### Regressions")[1]
    assert "c/dg_group/0.5: latency +20.0 %; top-1 -5.0 pt" in section
    assert "e/dg_group" not in section  # +2 % latency is under the 5 % threshold


def test_unknown_sweep_is_one_line(filled, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        report.main(["--tracking-uri", filled, "--sweep", "nope", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'nope'" in err and "s1" in err


def test_one_shot_sweep_says_so(store, tmp_path):
    log_fake_run(store, "os", "tiny_cnn", "dg_group", 0.5, acc=(0.99, 0.1))
    doc = report.write_report(store, "pruning-sweep", "os", tmp_path).read_text()
    assert "Top-1 is one-shot: the pruned models were not fine-tuned" in doc
    assert "tiny_cnn: 500 params, 5.00ms, 10.0% (one-shot)" in doc
    assert "recovery.png" not in doc


def test_recovery_axis_gives_rows_and_a_figure(store, tmp_path):
    for epochs, acc in ((0, 0.10), (1, 0.80), (3, 0.95)):
        log_fake_run(
            store, "rec", "tiny_cnn", "dg_group", 0.5, acc=(0.99, acc), epochs=epochs, oneshot=0.10
        )
    doc = report.write_report(store, "pruning-sweep", "rec", tmp_path).read_text()
    assert "tiny_cnn ft0: 500 params, 5.00ms, 10.0% (one-shot)" in doc
    assert "tiny_cnn ft3: 500 params, 5.00ms, 95.0% (one-shot 10.0%, fine-tuned 3 ep)" in doc
    assert "| tiny_cnn ft1 | 500 / 500 |" in doc and "| 10.0% | 80.0%, 1 ep (-19.0 pt) |" in doc
    assert (
        "after recovery fine-tuning on the train split (1 epoch at lr 0.001; 3 epochs at lr 0.001)"
        in doc
    )
    assert (tmp_path / "rec" / "recovery.png").stat().st_size > 1000 and "](recovery.png)" in doc
