"""The benchmark document, from a store filled through the project's own tracking code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.runs import EXPERIMENT, log_fake_run
from sweep import report, tracking

DATA = Path(__file__).parent / "expected"
EXPECTED = DATA / "expected_report.md"
EXPECTED_MATCHED = DATA / "expected_report_matched.md"


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


def _matches(doc: str, expected: Path) -> None:
    if os.environ.get("SWEEP_UPDATE_EXPECTED"):
        expected.write_text(doc)
        pytest.fail(
            f"{expected.name} rewritten: review its diff, then run again without SWEEP_UPDATE_EXPECTED"
        )
    assert doc == expected.read_text()


def test_report_matches_expected_document(filled, tmp_path):
    _matches(report.write_report(filled, EXPERIMENT, "s1", tmp_path / "out").read_text(), EXPECTED)


# tiny_cnn at two MACs targets, three seeds each: (pruner, target) -> top-1 after fine-tuning per seed
MATCHED = {
    ("dg_group", "macs=0.7"): (0.93, 0.95, 0.94),
    ("dg_taylor", "macs=0.7"): (0.96, 0.97, 0.95),
    ("dg_random", "macs=0.7"): (0.90, 0.91, 0.89),
    ("dg_group", "macs=0.5"): (0.85, 0.87, 0.86),
    ("dg_taylor", "macs=0.5"): (0.84, 0.86, 0.85),
    ("dg_random", "macs=0.5"): (0.80, 0.79, 0.81),
}


@pytest.fixture
def matched(store):
    for (pruner, target), accs in MATCHED.items():
        kept = float(target.split("=")[1])
        for seed, acc in enumerate(accs):
            log_fake_run(
                store,
                "m1",
                "tiny_cnn",
                pruner,
                0.5,
                target=target,
                seed=seed,
                macs=2e6 * (kept + 0.004 * seed),
                latency=(10.0, 10.0 * kept + 0.1 * seed),
                acc=(0.99, acc),
                oneshot=0.1 + 0.01 * seed,
                epochs=2,
                tags={tracking.TAG_LATENCY_FLAG: "few_iterations" if seed == 2 else "none"},
            )
    for seed in range(3):
        log_fake_run(
            store,
            "m1",
            "tiny_cnn",
            "semi_2_4",
            0.5,
            target="macs=0.5",
            seed=seed,
            epochs=2,
            not_applicable="target macs=0.5 is out of reach: at ratio 0.95 the model keeps 0.538",
        )
    return store


def test_matched_cost_report_matches_expected_document(matched, tmp_path):
    doc = report.write_report(matched, EXPERIMENT, "m1", tmp_path).read_text()
    _matches(doc, EXPECTED_MATCHED)


def test_repeats_are_mean_and_std_over_seeds(matched, tmp_path):
    doc = report.write_report(matched, EXPERIMENT, "m1", tmp_path).read_text()
    assert "18 runs (18 finished)" not in doc and "21 runs (18 finished)" in doc
    assert "seeds 0, 1, 2" in doc
    # dg_taylor at macs=0.7: top-1 0.96, 0.97, 0.95 -> 96.0 ± 1.0 %; speedup 10 / (7.0, 7.1, 7.2)
    assert (
        "tiny_cnn: 500 params, 7.10 ± 0.10ms, 96.0 ± 1.0% (one-shot 11.0 ± 1.0%, fine-tuned" in doc
    )
    assert "| tiny_cnn (3 seeds) |" in doc and "1.41x ± 0.02" in doc
    assert "latency not trusted: few_iterations" in doc


def test_summary_names_the_best_method_at_each_cost(matched, tmp_path):
    doc = report.write_report(matched, EXPERIMENT, "m1", tmp_path).read_text()
    summary = doc.split("## Summary")[1].split("\n## ")[0]
    at = {
        line.split(" | ")[1]: line for line in summary.splitlines() if line.startswith("| tiny_cnn")
    }
    assert at["macs=0.7"].split(" | ")[2].startswith("dg_taylor: 96.0 ± 1.0%")
    assert at["macs=0.7"].split(" | ")[3].startswith("dg_group: 94.0 ± 1.0%")
    assert at["macs=0.5"].split(" | ")[2].startswith("dg_group: 86.0 ± 1.0%")
    assert at["macs=0.5"].endswith("| 3 of 4 |")  # semi_2_4 could not reach it
    assert list(at) == ["macs=0.7", "macs=0.5"]  # least pruned first


def test_matched_cost_tables_put_methods_side_by_side(matched, tmp_path):
    doc = report.write_report(matched, EXPERIMENT, "m1", tmp_path).read_text()
    section = doc.split("## Matched cost: tiny_cnn")[1].split("\n## ")[0]
    rows = [line.split(" | ")[:2] for line in section.splitlines() if line.startswith("| macs=")]
    assert rows == [
        ["| macs=0.7", "dg_taylor (3 seeds)"],
        ["| macs=0.7", "dg_group (3 seeds)"],
        ["| macs=0.7", "dg_random (3 seeds)"],
        ["| macs=0.5", "dg_group (3 seeds)"],
        ["| macs=0.5", "dg_taylor (3 seeds)"],
        ["| macs=0.5", "dg_random (3 seeds)"],
        ["| macs=0.5", "semi_2_4"],
    ]
    assert "n/a: NotApplicable: target macs=0.5 is out of reach" in section


def test_checklist_says_what_the_numbers_support(matched, filled, tmp_path):
    good = report.write_report(matched, EXPERIMENT, "m1", tmp_path / "a").read_text()
    checks = good.split("## Reporting checklist")[1]
    assert "| methods compared at matched cost | yes |" in checks
    assert "| the same fine-tuning budget for every method | yes | 2 epochs at lr 0.001 |" in checks
    assert (
        "| random and magnitude baselines | yes | random: dg_random; magnitude: dg_group |"
        in checks
    )
    assert "| repeated runs, mean ± std | yes | 3 seeds" in checks
    assert (
        "| at least 5 points per trade-off curve | no | fewest points on a model/method curve: 2 |"
        in checks
    )
    weak = report.write_report(filled, EXPERIMENT, "s1", tmp_path / "b").read_text()
    checks = weak.split("## Reporting checklist")[1]
    assert "| methods compared at matched cost | no | pruned at fixed ratios" in checks
    assert "| random and magnitude baselines | no | no random baseline" in checks
    assert "| repeated runs, mean ± std | no | one seed" in checks


def test_ratio_sweeps_are_compared_by_macs_kept(store, tmp_path):
    # at one ratio, two methods keep very different MACs: they land in different cost levels
    log_fake_run(store, "r", "tiny_cnn", "dg_group", 0.5, macs=0.5e6, acc=(0.99, 0.80))
    log_fake_run(store, "r", "tiny_cnn", "dg_random", 0.3, macs=1.0e6, acc=(0.99, 0.85))
    log_fake_run(store, "r", "tiny_cnn", "dg_taylor", 0.5, macs=0.98e6, acc=(0.99, 0.90))
    doc = report.write_report(store, EXPERIMENT, "r", tmp_path).read_text()
    summary = doc.split("## Summary")[1].split("\n## ")[0]
    assert (
        "| tiny_cnn | MACs ≈ 50 % | dg_taylor (ratio 0.5): 90.0%, 2.00x | dg_random (ratio 0.3): 85.0%"
        in summary
    )
    assert "| tiny_cnn | MACs ≈ 20 % | dg_group (ratio 0.5): 80.0%, 2.00x | — | 1 of 1 |" in summary


def test_not_applicable_is_not_a_failure(matched, tmp_path):
    doc = report.write_report(matched, EXPERIMENT, "m1", tmp_path).read_text()
    assert "tiny_cnn: n/a: NotApplicable: target macs=0.5 is out of reach" in doc
    assert "FAILED" not in doc


def test_report_is_deterministic_and_honest(filled, tmp_path):
    a = report.write_report(filled, EXPERIMENT, None, tmp_path / "a").read_text()
    b = report.write_report(filled, EXPERIMENT, "s1", tmp_path / "b").read_text()
    assert a == b  # the newest sweep is s1
    assert "## Original (not pruned)" in a
    assert "c: 196,245,706 params, 17.00ms, 10.0% (accuracy at chance)" in a
    assert "tiny_cnn: NO-OP: pruning changed nothing, not a result" in a
    assert "tiny_vit: FAILED: RuntimeError: cannot prune this" in a
    assert "n/a (masks)" in a and "0.95x" not in a  # a mask's slower latency is not a "speedup"
    for png in ("accuracy_vs_macs.png", "accuracy_vs_latency.png", "speedup_vs_macs.png"):
        assert (tmp_path / "a" / "s1" / png).stat().st_size > 1000
        assert f"]({png})" in a


def test_missing_grid_points_are_shown(store, tmp_path):
    log_fake_run(store, "s2", "c", "l1_unstructured", 0.3)
    log_fake_run(store, "s2", "m", "dg_group", 0.3)
    doc = report.write_report(store, EXPERIMENT, "s2", tmp_path).read_text()
    assert "m: MISSING: no run logged for this grid point" in doc
    assert "c: MISSING: no run logged for this grid point" in doc


def test_baseline_lists_regressions(store, tmp_path):
    log_fake_run(store, "old", "c", "dg_group", 0.5, latency=(10.0, 5.0), acc=(0.9, 0.85))
    log_fake_run(store, "old", "e", "dg_group", 0.5, latency=(10.0, 5.0), acc=(0.9, 0.85))
    log_fake_run(store, "new", "c", "dg_group", 0.5, latency=(10.0, 6.0), acc=(0.9, 0.80))
    log_fake_run(store, "new", "e", "dg_group", 0.5, latency=(10.0, 5.1), acc=(0.9, 0.85))
    doc = report.write_report(store, EXPERIMENT, "new", tmp_path, baseline="old").read_text()
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
    doc = report.write_report(store, EXPERIMENT, "os", tmp_path).read_text()
    assert "Top-1 is one-shot: the pruned models were not fine-tuned" in doc
    assert "tiny_cnn: 500 params, 5.00ms, 10.0% (one-shot)" in doc
    assert "recovery.png" not in doc


def test_recovery_axis_gives_rows_and_a_figure(store, tmp_path):
    for epochs, acc in ((0, 0.10), (1, 0.80), (3, 0.95)):
        log_fake_run(
            store, "rec", "tiny_cnn", "dg_group", 0.5, acc=(0.99, acc), epochs=epochs, oneshot=0.10
        )
    doc = report.write_report(store, EXPERIMENT, "rec", tmp_path).read_text()
    assert "tiny_cnn ft0: 500 params, 5.00ms, 10.0% (one-shot)" in doc
    assert "tiny_cnn ft3: 500 params, 5.00ms, 95.0% (one-shot 10.0%, fine-tuned 3 ep)" in doc
    assert "| tiny_cnn ft1 | 500 / 500 |" in doc and "| 10.0% | 80.0%, 1 ep (-19.0 pt) |" in doc
    assert (
        "after recovery fine-tuning on the train split (1 epoch at lr 0.001; 3 epochs at lr 0.001)"
        in doc
    )
    assert (tmp_path / "rec" / "recovery.png").stat().st_size > 1000 and "](recovery.png)" in doc


def test_checklist_compares_budgets_within_a_model(store, tmp_path):
    # each model its own learning rate is one budget per model; two within a model are not
    for model, lr in (("tiny_cnn", 0.003), ("tiny_vit", 0.001)):
        for pruner in ("dg_group", "dg_random"):
            log_fake_run(
                store, "b", model, pruner, 0.5, epochs=1, extra_params={"finetune.lr_used": lr}
            )
    doc = report.write_report(store, EXPERIMENT, "b", tmp_path / "a").read_text()
    assert "| the same fine-tuning budget for every method | yes |" in doc
    log_fake_run(
        store, "b", "tiny_vit", "dg_taylor", 0.5, epochs=1, extra_params={"finetune.lr_used": 0.1}
    )
    doc = report.write_report(store, EXPERIMENT, "b", tmp_path / "b").read_text()
    assert (
        "| no | methods of tiny_vit had different budgets: 1 epoch at lr 0.001; 1 epoch at lr 0.1 |"
        in doc
    )
