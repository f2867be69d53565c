"""How much CPU other processes took from the cores a timing ran on.

A latency read while another process computes on the same cores is that process's figure as much as
the model's: the two models of a pair may not even be hit alike. Over the timed interval the kernel's
per-CPU accounting (`/proc/stat`: user, nice, system, irq, softirq and steal time, so a hypervisor
taking the CPU counts too) gives the busy time of the cores this process may run on; the process's own
CPU time (`/proc/self/stat`, every thread of it: a runtime's idle or spinning pool is its own, not
contention) is taken off. What remains is other work. Cores beyond the timed threads are room other
processes may use without taking any from the timing; the rest, over the timed threads' capacity, is
the contention share (0: alone; 0.5: others had half of the timed cores). Both files count in the
same kernel ticks, so the difference is consistent; a tick is 10 ms, so intervals under a second read
coarsely. Elsewhere than Linux the share is unknown (NaN) and nothing is flagged.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

# /proc/stat's columns after the cpu name: user nice system idle iowait irq softirq steal (guest time is
# already inside user and nice)
_BUSY = (0, 1, 2, 5, 6, 7)


def _ticks_per_s() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100.0


def _cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def busy_ticks(cpus: set[int], text: str) -> int:
    """Busy ticks of `cpus` in the text of /proc/stat."""
    total = 0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            fields = [int(v) for v in rest.split()]
            total += sum(fields[i] for i in _BUSY if i < len(fields))
    return total


def own_ticks(text: str) -> int:
    """utime + stime of the process, from the text of /proc/self/stat (the name may hold spaces)."""
    fields = text.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted from the state


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def share(*, others_s: float, wall_s: float, cpus: int, threads: int) -> float:
    """The share of the timed threads' cores that other work took: other CPU seconds beyond what the
    cores the timing left free could hold, over the timed threads' capacity, in 0..1."""
    if wall_s <= 0 or threads <= 0:
        return float("nan")
    room = wall_s * max(0, cpus - threads)
    return min(1.0, max(0.0, others_s - room) / (wall_s * min(threads, cpus)))


@dataclass
class Monitor:
    """`with Monitor(threads) as m: ...` then `m.share` (NaN where it cannot be read)."""

    threads: int
    share: float = float("nan")
    others_s: float = float("nan")

    def __enter__(self) -> Monitor:
        self._cpus = _cpus()
        self._t0 = time.perf_counter()
        try:
            self._busy0 = busy_ticks(self._cpus, _read("/proc/stat"))
            self._own0 = own_ticks(_read("/proc/self/stat"))
        except (OSError, ValueError, IndexError):
            self._busy0 = None
        return self

    def __exit__(self, *exc) -> None:
        if self._busy0 is None:
            return
        wall = time.perf_counter() - self._t0
        try:
            busy = busy_ticks(self._cpus, _read("/proc/stat")) - self._busy0
            own = own_ticks(_read("/proc/self/stat")) - self._own0
        except (OSError, ValueError, IndexError):
            return
        self.others_s = max(0, busy - own) / _ticks_per_s()
        self.share = share(
            others_s=self.others_s, wall_s=wall, cpus=len(self._cpus), threads=self.threads
        )
