"""Sweeps through a real SLURM (a single-node cluster on this machine), logging to a real MLflow server."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from helpers.cli import FAST, ROOT, run_cli
from helpers.runs import EXPERIMENT
from helpers.servers import free_port
from sweep import tracking

pytestmark = pytest.mark.slow

CAN_START = os.geteuid() == 0 and (shutil.which("slurmctld") or shutil.which("apt-get"))


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if not CAN_START:
        if os.environ.get("CI"):
            pytest.fail(
                "CI must run the SLURM tests: they need root to install and start Debian's slurm"
            )
        pytest.skip("needs root to install and start a local SLURM cluster")
    folder = tmp_path_factory.mktemp("slurm")
    # free ports, so a cluster left over from an interrupted run cannot answer for this one
    env = {**os.environ, "SLURMCTLD_PORT": str(free_port()), "SLURMD_PORT": str(free_port())}
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm-local.sh"), "start", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    conf = out.stdout.strip().split("=", 1)[1]
    yield {"SLURM_CONF": conf}
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm-local.sh"), "stop", str(folder)], timeout=60
    )


def test_sweep_through_slurm_with_a_hard_killed_job(slurm, mlflow_server, tmp_path, weights_cache):
    # 4 jobs; the 2 whose pruner is HardExit die mid-job with os._exit, leaving no result for submitit
    r = run_cli(
        [
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.gpus_per_node=null",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=null",
            "hydra.launcher.timeout_min=10",
            "model=tiny_cnn",
            "pruner=l1_unstructured",
            "ratio=0.3,0.5",
            "pruner._target_=sweep.pruners.torch_prune.L1Unstructured,helpers.pruners.HardExit",
            f"tracking.uri={mlflow_server}",
            "sweep_id=slurm",
            *FAST,
        ],
        cwd=tmp_path,
        env_extra=slurm,
        timeout=900,
    )
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-3000:]
    runs = tracking.search_runs(mlflow_server, EXPERIMENT, "slurm")
    status = sorted(x.info.status for x in runs)
    assert status == ["FAILED", "FAILED", "FINISHED", "FINISHED"], status
    for x in runs:
        if x.info.status == "FAILED":
            assert "ended without finishing its run" in x.data.tags["error"]
        else:
            assert "speedup" in x.data.metrics
    assert "2 finished, 2 failed" in r.stdout
