"""Hydra launcher for SLURM: hydra-submitit-launcher's, with a wait that always ends.

submitit learns a job's state from `sacct`. Where accounting is off or lagging, a job that dies without
writing its result (killed, out of memory, `os._exit`) stays UNKNOWN and the launcher would wait for
ever. Here the state also comes from `squeue --states=all` (slurmctld's own view), and a job that neither
knows is over; every job is waited for, and one that ended without a result becomes a FAILED job of the
sweep instead of stopping the wait for the others. On clusters with accounting nothing changes: sacct
answers first.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as _SubmititSlurmLauncher,
)
from sweep.errors import first_line

log = logging.getLogger(__name__)


def _squeue_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "--states=all", "-o", "%i|%T", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return None
    states = {}
    for line in out.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid:
            states[jid] = state
    return states


def _fallback_watcher():
    from submitit.slurm.slurm import SlurmInfoWatcher

    class SqueueFallbackWatcher(SlurmInfoWatcher):
        sacct_disabled: bool | None = None

        def update(self) -> None:
            if self.sacct_disabled is None:
                probe = subprocess.run(["sacct", "-n", "-j", "1"], capture_output=True, text=True)
                self.sacct_disabled = "disabled" in (probe.stdout + probe.stderr).lower()
                if self.sacct_disabled:
                    log.info("SLURM job accounting is off here: job states come from squeue")
            if not self.sacct_disabled:
                super().update()
            # jobs sacct says nothing about (accounting off, or not there yet)
            blind = [
                j
                for j in self._registered - self._finished
                if self._info_dict.get(j, {}).get("Source", "squeue") == "squeue"
            ]
            if blind:
                states = _squeue_states(blind)
                if states is not None:
                    for jid in blind:
                        # not even slurmctld knows it any more: it is over, whatever became of it
                        self._info_dict[jid] = {
                            "State": states.get(jid, "ENDED"),
                            "Source": "squeue",
                        }
            self._last_status_check = time.time()
            for jid in self._registered - self._finished:
                if self.is_done(jid, mode="cache"):
                    self._finished.add(jid)

        def read_info(self, string):
            info = super().read_info(string)
            for v in info.values():
                v["Source"] = "sacct"
            return info

    return SqueueFallbackWatcher(delay_s=60)


class SlurmLauncher(_SubmititSlurmLauncher):
    """`hydra/launcher=slurm` (conf/hydra/launcher/slurm.yaml)."""

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import submitit
        from submitit.slurm.slurm import SlurmJob

        SlurmJob.watcher = _fallback_watcher()
        params = dict(self.params)
        executor = submitit.AutoExecutor(
            cluster="slurm",
            folder=params.pop("submitit_folder"),
            slurm_max_num_timeout=params.pop("max_num_timeout", 0),
        )
        # submitit's own (cluster-independent) parameters are the launcher's BaseQueueConf fields; the
        # rest are sbatch options, which submitit takes with a slurm_ prefix (as upstream's launch does)
        generic = {f.name for f in dataclasses.fields(BaseQueueConf)} - {"submitit_folder"}
        executor.update_parameters(
            **{k if k in generic else f"slurm_{k}": v for k, v in params.items()}
        )
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        args = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            args.append(
                (
                    list(overrides),
                    "hydra.sweep.dir",
                    idx,
                    f"job_id_for_{idx}",
                    Singleton.get_state(),
                )
            )
        jobs = executor.map_array(self, *zip(*args))
        return [self._result(job, overrides) for job, overrides in zip(jobs, job_overrides)]

    def _result(self, job: Any, overrides: Sequence[str]) -> JobReturn:
        try:
            return job.results()[0]
        except Exception as e:  # the job ended without a result: killed, out of memory, os._exit
            log.error(
                "SLURM job %s (%s) ended without a result: %s",
                job.job_id,
                " ".join(overrides),
                first_line(e),
            )
            ret = JobReturn(
                overrides=list(overrides),
                cfg=OmegaConf.create(),
                hydra_cfg=self.config,
                working_dir=str(self.config.hydra.sweep.dir),
                task_name="sweep",
                status=JobStatus.FAILED,
            )
            ret._return_value = e
            return ret
