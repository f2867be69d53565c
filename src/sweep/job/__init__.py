"""One job of a sweep, as a recipe of named stages (`run._stages`):

    build -> weights -> prune (x prune.steps, fine-tuning between) -> measure -> evaluate -> finetune -> log

`context` holds what the stages read (the frozen `Job` and `Bench`, a schedule's `Progress`); `setup`,
`prune`, `measure` and `accuracy` compute; each stage returns results that know their own params,
metrics and tags, and `record` writes them to the job's MLflow run, in one place.
"""

from sweep.job.context import job_key, protocol_suffix, run_name_of, sweep_id_of
from sweep.job.measure import is_noop
from sweep.job.run import STAGES, run_job, run_job_isolated

__all__ = [
    "STAGES",
    "is_noop",
    "job_key",
    "protocol_suffix",
    "run_name_of",
    "run_job",
    "run_job_isolated",
    "sweep_id_of",
]
