"""Contention: the CPU other processes took from the timed cores, and what a contended timing may say."""

from __future__ import annotations

import math

import pytest

from sweep.measure import contention
from sweep.measure.latency import LatencyStats, Speedup, Timing

STAT = (
    "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 {a} 0 {b} 50 0 1 1 {steal} 0 0\ncpu1 5 0 5 50 0 0 0 0 0 0\n"
)


SELF = "4242 (a (weird) name) R 1 1 1 0 -1 4194304 1 0 0 0 {u} {s} 0 0 20 0 3 0\n"


def test_busy_and_own_ticks_are_read_from_the_kernel_files():
    text = STAT.format(a=7, b=3, steal=2)
    assert contention.busy_ticks({0}, text) == 7 + 3 + 1 + 1 + 2  # idle and iowait are not busy
    assert contention.busy_ticks({0, 1}, text) == 14 + 10
    assert contention.own_ticks(SELF.format(u=30, s=12)) == 42


@pytest.mark.parametrize(
    "others_s,cpus,threads,want",
    [
        (0.0, 2, 2, 0.0),  # alone
        (1.0, 2, 2, 0.5),  # others had one of the two timed cores for the whole second
        (1.0, 4, 2, 0.0),  # ... on the two cores the timing left free: room, not contention
        (3.0, 4, 2, 0.5),
        (9.0, 2, 2, 1.0),  # capped
    ],
)
def test_share_counts_only_what_the_free_cores_could_not_hold(others_s, cpus, threads, want):
    got = contention.share(others_s=others_s, wall_s=1.0, cpus=cpus, threads=threads)
    assert got == pytest.approx(want)


def test_the_process_own_threads_are_not_contention(monkeypatch):
    """Busy ticks the process itself spent (a runtime's pool spinning) are taken off; others' are not."""
    reads = iter(
        [
            STAT.format(a=0, b=0, steal=0),
            SELF.format(u=0, s=0),
            STAT.format(a=300, b=0, steal=100),  # 4 s of busy ticks at 100 Hz...
            SELF.format(u=300, s=0),  # ... 3 of them the process's own
        ]
    )
    monkeypatch.setattr(contention, "_read", lambda path: next(reads))
    monkeypatch.setattr(contention, "_cpus", lambda: {0})
    monkeypatch.setattr(contention, "_ticks_per_s", lambda: 100.0)
    with contention.Monitor(threads=1) as m:
        pass
    assert m.others_s == pytest.approx(1.0) and m.share == 1.0  # 1 s of others in a tiny interval


def test_unreadable_kernel_files_leave_the_share_unknown(monkeypatch):
    def nothing(path):
        raise OSError("no /proc here")

    monkeypatch.setattr(contention, "_read", nothing)
    with contention.Monitor(threads=2) as m:
        pass
    assert math.isnan(m.share) and math.isnan(m.others_s)


def _timing(share: float) -> Timing:
    st = LatencyStats(samples_ms=[1.0] * 10, warmup_iters=5, warmup_stable=True, batch_size=1)
    return Timing(
        stats=[st, st], threads=2, iters=10, device="cpu", contention=share, contention_max=0.1
    )


def test_a_contended_timing_is_flagged_and_never_slower_than_dense():
    slower = Speedup(value=0.8, ci_low=0.75, ci_high=0.85)
    quiet, busy = _timing(0.02), _timing(0.4)
    assert quiet.flag == "none" and quiet.slower_than_dense(slower)
    assert busy.flag == "contended" and not busy.slower_than_dense(slower)
    assert busy.metrics("onnxruntime/") == {"onnxruntime/cpu_contention": 0.4}
    assert _timing(float("nan")).metrics() == {} and _timing(float("nan")).flag == "none"
