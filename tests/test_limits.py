"""Per-job limits: a job over its time or memory limit ends FAILED naming the stage and the limit, and
the sweep goes on."""

import time

import pytest
import torch

from sweep import limits
from sweep.provenance import rss_mb


def test_stage_timeout_interrupts_a_sleeping_stage():
    t0 = time.monotonic()
    past = r"stage prune ran past job.stage_timeout_s.prune=0.5s"
    with pytest.raises(limits.LimitExceeded, match=past) as e, limits.Watchdog() as wd:
        wd.stage("prune", 0.5, "job.stage_timeout_s.prune")
        time.sleep(30)
    assert (e.value.stage, e.value.limit) == ("prune", "timeout")
    assert time.monotonic() - t0 < 5


def test_job_timeout_names_the_stage_it_stopped():
    past = r"job ran past job.timeout_s=0.5s \(stage measure\)"
    with pytest.raises(limits.LimitExceeded, match=past), limits.Watchdog(timeout_s=0.5) as wd:
        wd.stage("measure", None)
        time.sleep(30)


def test_memory_limit_stops_a_job_that_grows():
    start = rss_mb()
    held = []
    over = r"resident memory .* GiB over job.max_memory_gb"
    with (
        pytest.raises(limits.LimitExceeded, match=over) as e,
        limits.Watchdog(memory_mb=start + 300) as wd,
    ):
        wd.stage("prune", None)
        for _ in range(100):  # up to 2 GB, 20 MB at a time, touched so that it is resident
            held.append(torch.ones(5_000_000))
            time.sleep(0.02)
    assert e.value.limit == "memory"
    assert len(held) < 100
    del held


def test_within_limits_nothing_happens_and_the_handler_is_restored():
    import signal

    before = signal.getsignal(limits.SIGNAL)
    with limits.Watchdog(timeout_s=60, memory_mb=1e9) as wd:
        wd.stage("prune", 60)
        time.sleep(0.5)
    assert signal.getsignal(limits.SIGNAL) is before
    time.sleep(0.5)  # no late signal after the job


def test_auto_limits_scale_with_the_model():
    assert limits.auto_stage_timeout_s("prune", 1_000_000, 1) < limits.auto_stage_timeout_s(
        "prune", 300_000_000, 1
    )
    assert limits.auto_stage_timeout_s("prune", 1_000_000, 12) == 12 * limits.auto_stage_timeout_s(
        "prune", 1_000_000, 1
    )
    assert limits.auto_stage_timeout_s("finetune", 1_000_000, 1) is None
    small, big = limits.auto_memory_mb(1000, 1_000_000), limits.auto_memory_mb(1000, 10**9)
    assert small == pytest.approx(1000 + 4 * 1024) or small == 0.9 * limits.physical_memory_mb()
    assert big > small and big <= 0.9 * limits.physical_memory_mb()


def test_the_automatic_memory_limit_makes_room_for_training():
    small = limits.auto_memory_mb(1000.0, params=1_000_000)
    assert small == pytest.approx(1000.0 + 4 * limits.GIB)  # 4 GiB at least
    trains = limits.auto_memory_mb(1000.0, params=1_000_000, training_mb=6 * limits.GIB)
    assert trains == pytest.approx(min(1000.0 + 9 * limits.GIB, 0.9 * limits.physical_memory_mb()))
    unknown = limits.auto_memory_mb(1000.0, params=1_000_000, training_mb=float("nan"))
    assert unknown == small


def test_a_training_stage_over_the_memory_limit_names_what_to_change():
    start = rss_mb()
    held = []
    with (
        pytest.raises(limits.LimitExceeded, match=r"smaller finetune\.batch_size") as e,
        limits.Watchdog(memory_mb=start + 200) as wd,
    ):
        wd.stage("regularize", None)
        for _ in range(100):
            held.append(torch.ones(5_000_000))
            time.sleep(0.02)
    assert "job.max_memory_gb" in str(e.value)
    del held


def test_a_memory_plan_runs_a_batch_in_the_largest_part_that_fits():
    plan = limits.MemoryPlan(
        start_mb=1000.0, weights_mb=10.0, per_image_mb=100.0, ceiling_mb=8000.0
    )
    # room under the ceiling: (8000 - 1000 - 8 x 10) / 1.5 - 4 x 10 = 4573 MiB: 45 images
    assert plan.micro_batch(64, limits.OPTIMIZER_COPIES) == 45
    assert plan.micro_batch(16, limits.OPTIMIZER_COPIES) == 16  # fits whole
    assert plan.micro_batch(16, limits.GRADIENT_COPIES, most=4) == 4
    # the limit holds what the job keeps plus 1.5x the stage as run, and stays under the ceiling
    need = plan.need_mb(45, limits.OPTIMIZER_COPIES)
    assert plan.limit_mb([need]) == pytest.approx(1000 + 80 + 1.5 * need)
    assert plan.limit_mb([need]) <= plan.ceiling_mb
    assert plan.limit_mb([plan.need_mb(64, limits.OPTIMIZER_COPIES)]) == plan.ceiling_mb
    assert plan.limit_mb([]) == pytest.approx(1000 + 4 * limits.GIB)  # the 4 GiB floor
    assert plan.limit_mb([float("nan")]) == plan.limit_mb([])
    big = limits.MemoryPlan(start_mb=1000.0, weights_mb=200.0, per_image_mb=1.0, ceiling_mb=1e6)
    assert big.limit_mb([1.0]) == pytest.approx(1000 + 40 * 200)  # 40 copies of large weights
    # not counted: whole batches, as before
    unknown = limits.MemoryPlan(
        start_mb=1000.0, weights_mb=10.0, per_image_mb=float("nan"), ceiling_mb=5000.0
    )
    assert unknown.micro_batch(64, limits.OPTIMIZER_COPIES) == 64


def test_a_stage_that_cannot_fit_one_image_is_refused_with_its_need():
    plan = limits.MemoryPlan(
        start_mb=1000.0, weights_mb=10.0, per_image_mb=9000.0, ceiling_mb=5000.0
    )
    assert plan.micro_batch(64, limits.OPTIMIZER_COPIES) == 0
    line = plan.refusal("training at finetune.batch_size=64", limits.OPTIMIZER_COPIES)
    assert "\n" not in line and "finetune.batch_size=64" in line
    assert "14.3 GiB even one image at a time" in line  # 1000 + 80 + 1.5 x (9000 + 40) MiB
    assert "limit is 4.9 GiB" in line and "job.max_memory_gb" in line


def test_the_watchdog_keeps_each_stage_peak(monkeypatch):
    """The highest resident memory the watchdog's thread saw while a stage ran, even after the
    memory went back; a new stage starts from what is resident then. (The process's memory is
    stood in for: a real allocation may reuse what the allocator already holds.)"""
    rss = [1000.0]
    monkeypatch.setattr(limits, "rss_mb", lambda: rss[0])
    with limits.Watchdog(memory_mb=None) as wd:
        wd.stage("prune", None)
        rss[0] = 3000.0
        time.sleep(3 * limits.POLL_S)
        rss[0] = 1200.0
        time.sleep(2 * limits.POLL_S)
        assert wd.stage_peak_mb() == 3000.0
        wd.stage("measure", None)
        assert wd.stage_peak_mb() == 1200.0
