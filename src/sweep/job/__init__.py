"""One job of a sweep, as a recipe of named stages (`run._stages`):

    build -> weights -> prune (x prune.steps, fine-tuning between) -> measure -> evaluate -> finetune -> log

One module per stage: `build` (build, weights), `regularize`, `prune`, `measure`, `evaluate`,
`finetune`, `quantize`, `summary` (log). `context` holds what the stages read (the frozen `Job` and
`Bench`, a schedule's `Progress`); `identity` names a job and says when two are the same; each stage
returns results that know their own params, metrics and tags (`results`), and the `Recorder` there
writes them to the job's MLflow run, in one place. `run` is the recipe and runs it.
"""

from sweep.job.identity import job_key, protocol_suffix, run_name_of, sweep_id_of
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
