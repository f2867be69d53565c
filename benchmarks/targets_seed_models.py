"""Every pruning method on the seed benchmark's models (or any timm models), pruned to a cost target on
the CPU.

For each model (default c, e, v, m: convnext_large, efficientnet_b4, vit_large_patch16_224,
mobilenetv4_conv_large, 10-class heads, random weights) and each method of conf/pruner/: the method's
applicability check, then the ratio search of `target.<kind>=<value>` exactly as a job runs it
(`sweep.targets.method_search`: the method's ratio, then its finest steps), with a forward of the
result. Prints one line per model and method: how it landed (within tolerance, refined by the finest
steps, or at the nearest point below the target with the reason), what was reached and in how many
trials, or the one-line reason the method cannot apply or reach it. Calibration for the
gradient criteria is one batch of random images (a job takes them from the train split).
Targets: every structural method within ±0.02 of the target, or at the nearest point below it with
the reason; the others reach it or say why not. `benchmarks/matched_cost.py --search-only` runs it on
the coarse-channel families (grouped convolutions, few wide dependency groups).

    python benchmarks/targets_seed_models.py [--models c,e,v,m] [--kinds macs,params] [--value 0.5,0.3]
                                             [--methods dg_group,dg_taylor]
"""

from __future__ import annotations

import argparse
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
    return targets.method_search(pruner, dense, count(dense, x), x, goal, cal)


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
    fine = f" + finest steps {found.refine_ratio:.3f}" if found.refine_ratio else ""
    line = (
        f"{'ok' if ok else found.landing.upper():<8}{kind} kept {found.reached:.3f} at ratio "
        f"{found.ratio:.3f}{fine}, {len(found.trials)} trials, {time.perf_counter() - t0:.0f} s"
        + (f"\n{'':<57}{found.note}" if found.note else "")
    )
    # a structural method misses only where it lands neither within tolerance nor, with its reason,
    # at the nearest point below
    return line, pruner.kind is PruneKind.STRUCTURAL and not ok and not found.note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="c,e,v,m", help="aliases of conf/model/ or timm names")
    ap.add_argument("--kinds", default="macs,params")
    ap.add_argument("--value", default="0.5", help="fractions to keep, comma-separated")
    ap.add_argument("--methods", default=None, help="default: every conf/pruner/ method")
    args = ap.parse_args()
    methods = args.methods.split(",") if args.methods else None
    values = [float(v) for v in args.value.split(",")]
    return search_table(args.models.split(","), args.kinds.split(","), values, methods)


def search_table(models: list[str], kinds: list[str], values: list[float], methods=None) -> int:
    """One line per model, kind, value and method; the count of structural methods that missed."""
    initialize_config_dir(config_dir=str(config_dir()), version_base="1.3")
    methods = methods or group_options("pruner")
    aliases = group_options("model")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; targets {values}")
    missed = 0
    for alias in models:
        name = (
            compose("sweep", overrides=[f"model={alias}"]).model.name if alias in aliases else alias
        )
        torch.manual_seed(0)
        dense = timm.create_model(name, num_classes=10).eval()
        # CNNs trace at any size (a MACs fraction hardly depends on it); a ViT needs its own
        size = 224 if "vit" in name else 64
        x = torch.randn(1, 3, size, size)
        for kind in kinds:
            for value in values:
                for method in methods:
                    line, miss = run_one(alias, dense, x, method, kind, value)
                    missed += miss
                    label = f"{kind}={value:g}"
                    print(f"{alias[:12]:<13}{label:<10}{method:<20}{line}", flush=True)
    print(f"structural methods that missed the target: {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
