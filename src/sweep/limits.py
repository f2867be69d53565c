"""Per-job limits: wall time (the whole job and each stage) and resident memory.

A watchdog thread checks the limits a few times a second; on a breach it signals the job's main thread,
whose handler raises `LimitExceeded` where the job is: the run ends FAILED with the stage and the
limit named, what it already logged stays, and the sweep goes on with the next job. Python runs a
signal handler between bytecodes, so a job stuck in one long native call (a single huge kernel) ends
when that call returns; the pruning loops that hang in practice are Python code and end within the
watchdog's poll interval. A job not on its process's main thread runs without limits (logged).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from sweep.provenance import rss_mb

log = logging.getLogger("sweep")

SIGNAL = signal.SIGUSR1  # SIGUSR2 and SIGTERM belong to submitit / SLURM
POLL_S = 0.2
GIB = 1024.0  # MiB per GiB


class LimitExceeded(RuntimeError):
    """A job ran past `job.timeout_s`, `job.stage_timeout_s.<stage>` or `job.max_memory_gb`."""

    def __init__(self, message: str, stage: str, limit: str):
        super().__init__(message)
        self.stage, self.limit = stage, limit


def physical_memory_mb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return float("inf")


def auto_stage_timeout_s(stage: str, params: int, trials: int) -> float | None:
    """The default time limit of a stage for a model of `params` parameters, or None for no limit.
    Only pruning has one by default: its time is the library's graph work, which grows with the model,
    and is where a job has been seen to hang (training and evaluation have their own budgets)."""
    if stage != "prune":
        return None
    return trials * (300.0 + 3.0 * params / 1e6)


# the share above a training estimate the limit leaves (allocator fragmentation, the data pipeline,
# the dense model beside the one that trains)
TRAINING_HEADROOM = 1.5
# copies of the weights a stage keeps: training (weights, gradients, AdamW's two moments); the gradient
# criteria while pruning (weights and their gradients)
OPTIMIZER_COPIES, GRADIENT_COPIES = 4, 2
FLOOR_MB = 4 * GIB  # the least an automatic limit allows above the job's start
WEIGHT_COPIES = 40  # copies of the fp32 weights (dense, pruned, search trials, the library's graph)
# copies of the weights resident beside a gradient stage (the model as built, the dense model, the copy
# that trains, what earlier stages left): 40 would leave a 300M-parameter model no room to train in
# 24 GiB, where it trains in parts of a few images
HELD_COPIES = 8
# the most images a gradient criterion (Taylor, Hessian) runs backward through at once while pruning:
# its peak memory then does not grow with the calibration batch (pruner.calibration_batch_size)
CALIBRATION_MICRO_BATCH = 4


def auto_memory_mb(start_mb: float, params: int, training_mb: float = 0.0) -> float:
    """The default resident-memory limit: what the process held when the job started, plus the largest
    of 4 GiB, 40 copies of the model's fp32 weights (dense, pruned, search trials, gradients, optimizer
    state, the library's graph) and 1.5x what its gradient stages need (`training_mb`: activations at
    the batch they run, plus weights, gradients, optimizer state), and never more than 90 % of the
    machine's memory."""
    training = 0.0 if math.isnan(training_mb) else TRAINING_HEADROOM * training_mb
    allowance = max(FLOOR_MB, WEIGHT_COPIES * 4 * params / 2**20, training)
    return min(start_mb + allowance, 0.9 * physical_memory_mb())


@dataclass(frozen=True, kw_only=True)
class MemoryPlan:
    """What the stages that compute gradients need in memory (training, sparse training, the gradient
    criteria while pruning), counted before any of them runs, and the micro-batch each runs its batch
    in so that it fits under the machine's ceiling: the batch itself where it fits, else the largest
    part of it that does (gradients accumulated over the parts: the same effective batch)."""

    start_mb: float  # the process's resident memory when the job started
    weights_mb: float  # the dense model's weights
    per_image_mb: float  # what a backward pass keeps per image (NaN: not counted)
    ceiling_mb: float = field(default_factory=lambda: 0.9 * physical_memory_mb())

    def need_mb(self, batch: int, copies: int) -> float:
        """A stage that runs backward through `batch` images with `copies` copies of the weights
        (weights, gradients, optimizer state)."""
        return batch * self.per_image_mb + copies * self.weights_mb

    def micro_batch(self, batch: int, copies: int, most: int | None = None) -> int:
        """The largest part of `batch` (at most `most`) whose need fits under the ceiling with the
        limit's headroom; 0 where not even one image fits; the batch where nothing was counted."""
        want = min(batch, most or batch)
        if math.isnan(self.per_image_mb) or self.per_image_mb <= 0:
            return want
        held = self.start_mb + HELD_COPIES * self.weights_mb
        room = (self.ceiling_mb - held) / TRAINING_HEADROOM - copies * self.weights_mb
        return max(0, min(want, math.floor(room / self.per_image_mb)))

    def limit_mb(self, needs: list[float]) -> float:
        """The automatic limit for a job whose stages need `needs` MiB at their peak (as run): its
        start plus the largest of 4 GiB, 40 copies of the weights, and the copies held beside a
        gradient stage plus 1.5x the largest stage need; at most the ceiling."""
        need = max([n for n in needs if not math.isnan(n)], default=0.0)
        held = HELD_COPIES * self.weights_mb
        allowance = max(FLOOR_MB, WEIGHT_COPIES * self.weights_mb, held + TRAINING_HEADROOM * need)
        return min(self.start_mb + allowance, self.ceiling_mb)

    def refusal(self, what: str, copies: int) -> str:
        """Why a stage cannot run here even one image at a time: one line, with what it needs."""
        held = self.start_mb + HELD_COPIES * self.weights_mb
        need = held + TRAINING_HEADROOM * self.need_mb(1, copies)
        return (
            f"{what} needs {need / GIB:.1f} GiB even one image at a time ({self.per_image_mb:.0f} "
            f"MiB an image, beside {HELD_COPIES + copies} copies of {self.weights_mb:.0f} MiB "
            f"of weights); the limit is {self.ceiling_mb / GIB:.1f} GiB: raise "
            f"job.max_memory_gb, use a smaller model.input_size, or a machine with more memory"
        )


# what to change when a stage needs more memory than the limit allows
TRAINING_HINT = {
    "regularize": " (raise it, or train with a smaller finetune.batch_size)",
    "finetune": " (raise it, or train with a smaller finetune.batch_size)",
    "weights": " (raise it, or train the head with a smaller model.train.batch_size)",
    "prune": " (raise it, or prune with fewer pruner.calibration_batches)",
}


@dataclass
class Watchdog:
    """Limits of one job. `stage(name, timeout)` marks where the job is; `memory_mb` may be set later (it
    scales with the model, known after build)."""

    timeout_s: float | None = None
    memory_mb: float | None = None
    start_mb: float = 0.0  # the process's resident memory when the job started
    memory_key: str = "job.max_memory_gb"
    _stage: str = "start"
    _stage_deadline: float | None = None
    _stage_limit: str = ""
    _stage_peak_mb: float = 0.0  # the highest resident memory sampled in the current stage
    _deadline: float | None = None
    _breach: LimitExceeded | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _previous: object = None
    _t0: float = 0.0

    # -- where the job is
    def stage(self, name: str, timeout_s: float | None, key: str = "") -> None:
        self._stage = name
        self._stage_peak_mb = rss_mb()
        self._stage_deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._stage_limit = f"{key}={timeout_s:g}s" if timeout_s is not None else ""

    def stage_peak_mb(self) -> float:
        """The highest resident memory of the current stage, MiB: sampled by the watchdog's thread
        while it runs (a peak shorter than its poll interval can be missed), and now."""
        return max(self._stage_peak_mb, rss_mb())

    # -- the thread and the handler
    def __enter__(self) -> Watchdog:
        if threading.current_thread() is not threading.main_thread():
            log.warning(
                "job limits not enforced: the job does not run on its process's main thread"
            )
            return self
        self._t0 = time.monotonic()
        if self.timeout_s is not None:
            self._deadline = self._t0 + self.timeout_s
        self._previous = signal.signal(SIGNAL, self._raise)
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._watch, name="sweep-limits", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            signal.signal(SIGNAL, self._previous)
        return None

    def _raise(self, signum, frame) -> None:
        breach, self._breach = self._breach, None
        if breach is not None and not self._stop.is_set():
            self._stop.set()  # one breach per job
            raise breach

    def _check(self) -> LimitExceeded | None:
        now = time.monotonic()
        where = f"stage {self._stage}"
        if self._stage_deadline is not None and now > self._stage_deadline:
            return LimitExceeded(
                f"{where} ran past {self._stage_limit} (job stopped there)", self._stage, "timeout"
            )
        if self._deadline is not None and now > self._deadline:
            return LimitExceeded(
                f"job ran past job.timeout_s={self.timeout_s:g}s ({where})", self._stage, "timeout"
            )
        rss = rss_mb()
        self._stage_peak_mb = max(self._stage_peak_mb, rss)
        if self.memory_mb is not None and rss > self.memory_mb:
            hint = TRAINING_HINT.get(self._stage, " (raise it, or null: no limit)")
            return LimitExceeded(
                f"{where}: resident memory {rss / GIB:.1f} GiB over "
                f"{self.memory_key}={self.memory_mb / GIB:.1f}{hint}",
                self._stage,
                "memory",
            )
        return None

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            breach = self._check()
            if breach is not None:
                self._breach = breach
                log.error("limit: %s", breach)
                signal.pthread_kill(self._main, SIGNAL)
                return
