"""Every pruning method on the seed benchmark's models, pruned to a cost target on the CPU.

For each model (default c, e, v, m: convnext_large, efficientnet_b4, vit_large_patch16_224,
mobilenetv4_conv_large, 10-class heads, random weights) and each method of conf/pruner/: the method's
applicability check, then the ratio search of `target.<kind>=<value>` exactly as a job runs it
(`sweep.targets`), with a forward of the result. Prints one line per model and method: what was reached
and in how many trials, or the one-line reason the method cannot apply or reach it. Calibration for the
gradient criteria is one batch of random images (the pipeline takes them from the train split).
Targets: every structural method within ±0.02 of the target; the others reach it or say why not.

    python benchmarks/targets_seed_models.py [--models c,e,v,m] [--kinds macs,params] [--value 0.5]
                                             [--methods dg_group,dg_taylor]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import timm
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from sweep import targets
from sweep.config import config_dir, group_options
from sweep.errors import NotApplicable, one_line
from sweep.measure.counting import count
from sweep.pruners.base import Calibration, PruneKind


def _pruner(name: str):
    return instantiate(compose("sweep", overrides=[f"pruner={name}"]).pruner)


def _search(pruner, dense, x, cal, kind: str, value: float) -> targets.Found:
    goal = targets.Target(kind, value, 0.02, 12, 0.95)

    def prune_at(ratio: float):
        torch.manual_seed(0)
        return pruner.prune(copy.deepcopy(dense), ratio, x, cal).eval()

    by_nonzero = pruner.kind is not PruneKind.STRUCTURAL
    return targets.search(targets.cost_trial(prune_at, count(dense, x), x, goal, by_nonzero), goal)


def run_one(alias: str, dense, x, name: str, kind: str, value: float) -> tuple[str, bool]:
    """One line for a model and method, and whether it is a structural method that missed."""
    pruner = _pruner(name)
    t0 = time.perf_counter()
    cal = Calibration([(x.repeat(2, 1, 1, 1), torch.tensor([0, 1]))])
    try:
        pruner.check(dense, alias)
        found = _search(pruner, dense, x, cal if pruner.calibration_batches else None, kind, value)
        with torch.no_grad():
            assert found.model(x).shape == (1, 10)
    except NotApplicable as e:  # a structural method missing its target counts as a miss
        missed = pruner.kind is PruneKind.STRUCTURAL and isinstance(e, targets.TargetNotReached)
        return f"{'n/a':<8}{one_line(e)}", missed
    ok = abs(found.reached - value) <= 0.02
    line = (
        f"{'ok' if ok else 'MISSED':<8}{kind} kept {found.reached:.3f} at ratio {found.ratio:.3f}, "
        f"{len(found.trials)} trials, {time.perf_counter() - t0:.0f} s"
    )
    return line, pruner.kind is PruneKind.STRUCTURAL and not ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="c,e,v,m")
    ap.add_argument("--kinds", default="macs,params")
    ap.add_argument("--value", type=float, default=0.5)
    ap.add_argument("--methods", default=None, help="default: every conf/pruner/ method")
    args = ap.parse_args()
    initialize_config_dir(config_dir=str(config_dir()), version_base="1.3")
    methods = args.methods.split(",") if args.methods else group_options("pruner")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; target value {args.value}"
    )
    missed = 0
    for alias in args.models.split(","):
        name = compose("sweep", overrides=[f"model={alias}"]).model.name
        torch.manual_seed(0)
        dense = timm.create_model(name, num_classes=10).eval()
        # CNNs trace at any size (a MACs fraction hardly depends on it); a ViT needs its own
        size = 224 if "vit" in name else 64
        x = torch.randn(1, 3, size, size)
        for kind in args.kinds.split(","):
            for method in methods:
                line, miss = run_one(alias, dense, x, method, kind, args.value)
                missed += miss
                print(f"{alias:<3}{name:<26}{method:<20}{line}", flush=True)
    print(f"structural methods that missed the target: {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
