"""Contention: the CPU other processes took from the timed cores, and what a contended timing may say."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from sweep.measure.latency import LatencySettings, time_models

BURN = "import time\nend = time.time() + {s}\nwhile time.time() < end:\n    pass\n"


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux's /proc/stat")
def test_a_cpu_bound_process_beside_the_timing_is_seen():
    """Processes spinning on every core the timing may use (one more than there are), for as long as
    it runs: flagged."""
    cpus = len(os.sched_getaffinity(0))
    burners = [subprocess.Popen([sys.executable, "-c", BURN.format(s=8)]) for _ in range(cpus + 1)]
    try:
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        settings = LatencySettings(threads=1, time_budget_s=1.5, warmup_max=5, bootstrap=0)
        timing = time_models([model, model], torch.zeros(1, 64), settings, torch.device("cpu"))
    finally:
        for p in burners:
            p.kill()
            p.wait()
    assert timing.contention > 0.2 and "contended" in timing.flag.split(",")
