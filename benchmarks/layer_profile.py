"""Where the time went, measured: dense and pruned profiled layer by layer in eager, ONNX Runtime and
OpenVINO, each by its own profiler, at `target.macs=0.5` with `prune.round_to` none and 16.

Per model, rounding and runtime: the speedup and what the MACs predict, `profile_coverage` (the named
layers' time over the harness's median latency, dense and pruned: the goal is at least 0.90 and within
15 % of 1), and the layers behind most of the gap; then whether rounding removes them. Each run is a
fresh sweep (random weights, synthetic data, no fine-tuning: this is about speed); `--runs 2` repeats
it and prints each run's table.

    python benchmarks/layer_profile.py [--models resnet50,mobilenetv3_large_100,vit_small_patch16_224,tiny_cnn]
                                 [--method dg_group] [--runs 2]
"""

from __future__ import annotations

import argparse
import sys

from _common import fresh_sweep
from sweep import tracking
from sweep.report import cells, rows

RUNTIMES = ("eager", "onnxruntime", "openvino")
GOAL_LOW, GOAL_SPREAD = 0.90, 0.15
ALIGNED = {True: "channels x16", False: "not x16", None: "no channels of its own"}


def grid(models: str, method: str) -> list[str]:
    timm_named = [m for m in models.split(",") if not m.startswith("tiny_")]
    return [
        "-m",
        f"model={models}",
        f"pruner={method}",
        "target.macs=0.5",
        "prune.round_to=null,16",
        "dataset=synthetic",
        "finetune.epochs=0",
        "eval.max_samples=32",
        "measure.profile=true",
        "measure.peak=false",
        "measure.runtimes=[eager,onnxruntime,openvino]",
        # timm models by name: random weights, no training (their latency is the point)
        *(
            ["model.weights=random", "model.head=finetune", "model.train.epochs=0"]
            if timm_named
            else []
        ),
    ]


def coverage(r: rows.Row, runtime: str) -> tuple[float | None, float | None]:
    key = tracking.runtime_key
    d = r.metrics.get(key(runtime, tracking.DENSE_PREFIX + tracking.PROFILE_COVERAGE))
    p = r.metrics.get(key(runtime, tracking.PROFILE_COVERAGE))
    return d, p


def report(sweep: rows.Sweep) -> tuple[int, int]:
    """Prints the run's table; returns (figures within the goal, figures)."""
    ok = total = 0
    print("| model | round_to | runtime | speedup (MACs predict) | coverage dense / pruned | layers behind the gap |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in sorted(sweep.rows, key=lambda r: (r.model, r.protocol)):
        predicted = f"{1 / r.macs_kept:.2f}x" if r.macs_kept else "?"
        for rt in RUNTIMES:
            d, p = coverage(r, rt)
            if p is None:
                na = r.tags.get(tracking.runtime_key(rt, tracking.TAG_PROFILE_NA), "not profiled")
                print(f"| {r.model} | {r.protocol or 'none'} | {rt} | — | — | {na} |")
                continue
            for c in (d, p):
                total += 1
                ok += c is not None and c >= GOAL_LOW and abs(c - 1) <= GOAL_SPREAD
            layers = cells.layers_said(cells.slow_layers(r, rt), 3) or "—"
            print(
                f"| {r.model} | {r.protocol or 'none'} | {rt} | {cells.speed(r, rt)} ({predicted}) | "
                f"{d:.2f} / {p:.2f} | {layers} |"
            )
    return ok, total


def rounding(sweep: rows.Sweep) -> None:
    """Per model and runtime: is the unrounded run's largest-gap layer still behind the rounded one's?"""
    by = {(r.model, r.protocol): r for r in sweep.rows}
    for model in sweep.models:
        plain, rounded = by.get((model, "")), by.get((model, "round16"))
        if plain is None or rounded is None:
            continue
        for rt in RUNTIMES:
            top = cells.slow_layers(plain, rt)
            if not top:
                continue
            still = any(f["layer"] == top[0]["layer"] for f in cells.slow_layers(rounded, rt))
            print(
                f"- {model} {rt}: {top[0]['layer']} ({ALIGNED[top[0].get('aligned')]}) "
                f"{'still' if still else 'no longer'} behind the gap with round_to=16; speedup "
                f"{cells.speed(plain, rt)} -> {cells.speed(rounded, rt)}"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models", default="resnet50,mobilenetv3_large_100,vit_small_patch16_224,tiny_cnn"
    )
    ap.add_argument("--method", default="dg_group")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    within = []
    for i in range(args.runs):
        store, seconds = fresh_sweep(
            "sweep-profile-", f"profile{i}", grid(args.models, args.method)
        )
        sweep = rows.load_sweep(store, tracking.DEFAULT_EXPERIMENT, f"profile{i}")
        print(f"\n## run {i + 1} of {args.runs}: {len(sweep.runs)} jobs in {seconds:.0f} s\n")
        ok, total = report(sweep)
        print()
        rounding(sweep)
        within.append(f"{ok} of {total}")
        print(f"\ncoverage within the goal (>= {GOAL_LOW:.2f}, within {GOAL_SPREAD:.0%} of 1): {ok} of {total}")  # fmt: skip
    print(f"\nruns: {'; '.join(within)} coverage figures within the goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
