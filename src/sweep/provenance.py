"""Where and with what a job ran: device, git commit, library versions (tags of every run)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus"


@functools.cache
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--verify", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


@functools.cache
def versions() -> dict[str, str]:
    import mlflow
    import timm
    import torch_pruning

    return {
        "torch_version": torch.__version__,
        "timm_version": timm.__version__,
        "torch_pruning_version": getattr(torch_pruning, "__version__", "unknown"),
        "mlflow_version": mlflow.__version__,
    }


def installed_version(dist: str) -> str | None:
    """The installed version of the distribution `dist`, or None where it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def rss_mb() -> float:
    """Resident memory of this process now, MiB (Linux; NaN elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def trim_heap() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so that a process's resident
    memory says what is still in use rather than what the allocator keeps for later."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: RSS may include freed memory
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def release_memory() -> None:
    """Between jobs: `trim_heap`, and what survives set aside from later collections."""
    import gc

    trim_heap()
    # what survives is long-lived (libraries, caches): out of later collections' way, so the next job's
    # collection scans only what was made since (a full scan costs about 0.3 s a job)
    gc.freeze()
