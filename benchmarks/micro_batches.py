"""Fine-tuning in parts of a batch (gradient accumulation) against the whole batch, on models where
both fit: top-1 after fine-tuning over seeds, so the difference can be set against the seed spread.

    python benchmarks/micro_batches.py [--models tiny_cnn,tiny_effnet] [--seeds 0,1,2] [--micro 16]

Each job is the real one (in this process, each into a temporary store): the model trained on digits,
pruned by `dg_group` to half its MACs, fine-tuned one epoch at `finetune.batch_size=64`, once whole and
once with the job's micro-batch forced to `--micro` (where memory is short the job chooses it itself).
Both models have BatchNorm, whose batch statistics are the part's when a batch runs in parts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from sweep import job, tracking
from sweep.config import config_dir
from sweep.config.schema import register
from sweep.job import context

COMMON = [
    "pruner=dg_group",
    "target.macs=0.5",
    "finetune.epochs=1",
    "measure.runtimes=[eager]",
    "measure.time_budget_s=0.3",
    "measure.profile=false",
    "log_models=[]",
]


def _top1(overrides: list[str], micro: int | None, store: str, monkeypatch_micro) -> float:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("sweep", overrides=[*COMMON, *overrides, f"tracking.uri={store}"])
    with monkeypatch_micro(micro):
        job.run_job(cfg)
    (run,) = [r for r in tracking.search_runs(store, tracking.DEFAULT_EXPERIMENT) if r.data.params]
    assert run.info.status == "FINISHED", run.data.tags.get(tracking.TAG_ERROR)
    return run.data.metrics[tracking.ACCURACY]


class _Forced:
    """Job.micro_batch forced to one value (None: the job's own choice: the whole batch here)."""

    def __init__(self, micro: int | None):
        self.micro, self.was = micro, context.Job.micro_batch

    def __enter__(self):
        if self.micro is not None:
            micro = self.micro
            context.Job.micro_batch = lambda self, batch, copies=4: micro if micro < batch else None

    def __exit__(self, *exc):
        context.Job.micro_batch = self.was


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="tiny_cnn,tiny_effnet")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--micro", type=int, default=16)
    a = p.parse_args()
    register()
    seeds = [int(s) for s in a.seeds.split(",")]
    print("| model | whole batch (64): mean top-1, spread | parts of", a.micro, "| difference |")
    print("|---|---|---|---|")
    for model in a.models.split(","):
        got = {}
        for micro in (None, a.micro):
            got[micro] = []
            for seed in seeds:
                store = f"sqlite:///{Path(tempfile.mkdtemp(prefix='sweep-micro-')) / 'mlflow.db'}"
                got[micro].append(_top1([f"model={model}", f"seed={seed}"], micro, store, _Forced))
        whole, parts = got[None], got[a.micro]
        spread = max(whole) - min(whole)
        diff = statistics.mean(parts) - statistics.mean(whole)
        print(
            f"| {model} | {statistics.mean(whole):.4f} ({min(whole):.4f}-{max(whole):.4f}, "
            f"spread {spread:.4f}) | {statistics.mean(parts):.4f} ({min(parts):.4f}-"
            f"{max(parts):.4f}) | {diff:+.4f} ({'within' if abs(diff) <= spread else 'beyond'} "
            f"the seed spread) |"
        )


if __name__ == "__main__":
    main()
