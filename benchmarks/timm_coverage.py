"""Pruning across timm's architecture families: which ones every method prunes.

One small representative per family (random weights, CPU, the model's own input size). For each, with
every method of conf/pruner at one ratio: the method's applicability check, for a method that trains for
sparsity a short sparse-training phase (`REGULARIZE_STEPS` backward passes through its regularizer), a
prune of a fresh copy, a forward pass, the output shape, and parameters and MACs fewer than the dense
model's (a mask method: non-zero parameters and MACs fewer). Each outcome is
one of: pruned (all of that), refused (the method's check said why, before pruning: BN-scale on a model
without BatchNorm, a timm block the library cannot prune), failed (an error, a wrong shape, or nothing
removed; the error's one line is printed), or over a limit (sweep.limits: time or memory).

Prints one line per model and method, a table per family, and the counts; `--markdown` also prints the
coverage table (docs/timm-coverage.md). With `--target-macs 0.5`, every method that pruned a model is also searched
to that share of the dense MACs as a job searches it (its ratio, then its finest steps: sweep.targets)
and the table gets a column: how many of the methods that prune the model land within ±0.02.

    python benchmarks/timm_coverage.py [--ratio 0.5] [--methods dg_group,dg_taylor] [--families swin,mixer]
                                       [--jobs 2] [--timeout 300] [--markdown] [--target-macs 0.5]
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (family, timm model, create_model kwargs). The smallest variant timm has; where a family has none
# small, fewer blocks of the same kind (`depth`), which does not change what has to be pruned.
FAMILIES = [
    ("ResNet", "resnet18", {}),
    ("ResNeXt", "resnext26ts", {}),
    ("RegNet", "regnetx_002", {}),
    ("DenseNet", "densenet121", {}),
    ("EfficientNet", "efficientnet_b0", {}),
    ("EfficientNetV2", "tf_efficientnetv2_b0", {}),
    ("MobileNetV3", "mobilenetv3_small_050", {}),
    ("MobileNetV4", "mobilenetv4_conv_small", {}),
    ("GhostNet", "ghostnet_050", {}),
    ("ConvNeXt", "convnext_atto", {}),
    ("ConvNeXtV2", "convnextv2_atto", {}),
    ("ViT", "vit_tiny_patch16_224", {}),
    ("DeiT", "deit_tiny_patch16_224", {}),
    ("BEiT", "beit_base_patch16_224", {"depth": 2}),
    ("EVA-02", "eva02_tiny_patch14_224", {}),
    ("Swin", "swin_tiny_patch4_window7_224", {}),
    ("SwinV2", "swinv2_tiny_window8_256", {}),
    ("MLP-Mixer", "mixer_s16_224", {}),
    ("ResMLP", "resmlp_12_224", {}),
    ("PoolFormer", "poolformer_s12", {}),
    ("MetaFormer (CAFormer)", "caformer_s18", {}),
    ("LeViT", "levit_128s", {}),
    ("EfficientViT (MIT)", "efficientvit_b0", {}),
    ("EfficientViT (MSRA)", "efficientvit_m0", {}),
    ("FastViT", "fastvit_t8", {}),
    ("MaxViT", "maxvit_nano_rw_256", {}),
    ("CoAtNet", "coatnet_nano_rw_224", {}),
    ("CaiT", "cait_xxs24_224", {"depth": 4}),
    ("XCiT", "xcit_nano_12_p16_224", {}),
    ("RepVGG", "repvgg_a0", {}),
    ("MobileOne", "mobileone_s0", {}),
    ("CSPNet", "cspresnet50", {}),
    ("Res2Net", "res2net50_14w_8s", {}),
    ("TinyViT", "tiny_vit_5m_224", {}),
    ("Sequencer", "sequencer2d_s", {}),
    ("EfficientFormer", "efficientformer_l1", {}),
    ("EfficientFormerV2", "efficientformerv2_s0", {}),
    ("NesT", "nest_tiny", {}),
    ("Inception", "inception_v3", {}),
    ("DLA", "dla34", {}),
    ("VGG", "vgg11", {}),
    ("MNASNet", "mnasnet_small", {}),
    ("ReXNet", "rexnet_100", {}),
    ("HGNetV2", "hgnetv2_b0", {}),
    ("EdgeNeXt", "edgenext_xx_small", {}),
    ("MobileViT", "mobilevit_xxs", {}),
    ("PVTv2", "pvt_v2_b0", {}),
    ("PiT", "pit_ti_224", {}),
    ("DaViT", "davit_tiny", {}),
    ("Hiera", "hiera_tiny_224", {}),
    ("RepViT", "repvit_m0_9", {}),
    ("StarNet", "starnet_s1", {}),
]

# every method of conf/pruner: structural ones, the three that train for sparsity, the masks
METHODS = tuple(sorted(p.stem for p in (ROOT / "conf" / "pruner").glob("*.yaml")))
REGULARIZE_STEPS = 3  # backward passes through a regularizer before its method prunes


@dataclass
class Outcome:
    family: str
    model: str
    method: str
    status: str  # pruned | refused | failed | limit
    detail: str = ""  # params and MACs kept, or the reason
    seconds: float = 0.0
    landing: str = ""  # with --target-macs: within | refined | nearest | out of reach | failed


def _pruner(method: str):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    return instantiate(OmegaConf.load(ROOT / "conf" / "pruner" / f"{method}.yaml"))


sys.path.insert(0, str(ROOT / "src"))  # this checkout's code, in pool workers too


def one_model(args: tuple) -> list[Outcome]:
    """Every method on one model, in this process (a pool worker: its main thread runs the limits)."""
    family, name, kwargs, methods, ratio, timeout_s, target_macs = args
    import timm
    import torch

    from sweep import limits
    from sweep.errors import NotApplicable, one_line
    from sweep.measure.counting import count
    from sweep.pruners.base import Calibration

    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = []
    try:
        model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return [Outcome(family, name, m, "failed", f"create: {one_line(e)}") for m in methods]
    size = model.pretrained_cfg.get("input_size", (3, 224, 224))
    x = torch.randn(1, *size)
    cal = Calibration([(torch.randn(2, *size), torch.randint(0, 10, (2,)))])
    with torch.no_grad():
        want = model(x).shape
    dense = count(model, x)
    for method in methods:
        t0 = time.perf_counter()
        pruner = _pruner(method)
        try:
            with limits.Watchdog(
                memory_mb=limits.auto_memory_mb(0, dense.params_total) + 4096
            ) as wd:
                # with an example: the check of sweep.pruners.timm_checks, as a job runs it
                wd.stage("preflight", timeout_s, "--timeout")
                pruner.check(model, name, x)
                torch.manual_seed(0)
                base = copy.deepcopy(model)
                if pruner.regularize is not None:
                    wd.stage("regularize", timeout_s, "--timeout")
                    _regularize(pruner, base, cal)
                wd.stage("prune", timeout_s, "--timeout")
                pruned = pruner.prune(base, ratio, x, cal).eval()
                wd.stage("forward", timeout_s, "--timeout")
                with torch.no_grad():
                    got = pruned(x).shape
                c = count(pruned, x)
            kept = (
                f"params {c.params_total / dense.params_total:.2f}, MACs {c.macs / dense.macs:.2f}"
                if pruner.kind.dense_speedup_possible
                else f"non-zero params {c.params_nonzero / dense.params_nonzero:.2f}, "
                f"MACs {c.macs_nonzero / dense.macs_nonzero:.2f}"
            )
            if got != want:
                out.append(
                    Outcome(
                        family, name, method, "failed", f"output {tuple(got)}, want {tuple(want)}"
                    )
                )
            elif _nothing_removed(pruner, dense, c):
                out.append(Outcome(family, name, method, "failed", f"nothing removed ({kept})"))
            elif pruner.kept_dense:
                # pruned, with the layers the library cannot prune left whole (sweep.pruners.timm_blocks)
                out.append(
                    Outcome(
                        family,
                        name,
                        method,
                        "pruned",
                        f"{kept}; kept whole: {','.join(pruner.kept_dense)}",
                    )
                )
            else:
                out.append(Outcome(family, name, method, "pruned", kept))
            if target_macs and out[-1].status == "pruned":
                wd.stage("target", timeout_s, "--timeout")
                out[-1].landing = _landing(pruner, model, dense, x, cal, target_macs)
        except NotApplicable as e:
            out.append(Outcome(family, name, method, "refused", str(e)))
        except limits.LimitExceeded as e:
            out.append(Outcome(family, name, method, "limit", str(e)))
        except Exception as e:  # noqa: BLE001 - the point of the benchmark
            out.append(Outcome(family, name, method, "failed", one_line(e)[:160]))
        out[-1].seconds = time.perf_counter() - t0
        o = out[-1]
        print(
            f"{o.family:<22}{o.model:<30}{o.method:<15}{o.status:<8}{o.seconds:>6.1f}s  {o.detail}"
            + (f"; target: {o.landing}" if o.landing else ""),
            flush=True,
        )
    return out


def _regularize(pruner, model, cal) -> None:
    """A few sparse-training steps through the method's own regularizer (what its job's regularize
    stage does for `pruner.regularize.epochs`)."""
    images, labels = cal.batches[0]
    with pruner.regularizing(model, images[:1]) as after_backward:
        # in training mode inside: the library traces the model in eval mode, where LeViT and TinyViT
        # cache an attention bias that a second backward would reach through (as a job's training does)
        model.train()
        for _ in range(REGULARIZE_STEPS):
            model.zero_grad()
            out = model(images)
            out = out[0] if isinstance(out, tuple) else out
            out.log_softmax(-1).gather(1, labels[:, None]).mean().neg().backward()
            if after_backward is not None:
                after_backward(model)
    model.zero_grad(set_to_none=True)
    model.eval()


def _nothing_removed(pruner, dense, c) -> bool:
    """Structural: parameters and MACs not fewer; a mask: non-zero parameters and MACs not fewer."""
    from sweep.pruners.base import PruneKind

    if pruner.kind is PruneKind.STRUCTURAL:
        return c.params_total >= dense.params_total or c.macs >= dense.macs
    return c.params_nonzero >= dense.params_nonzero or c.macs_nonzero >= dense.macs_nonzero


def _landing(pruner, model, dense, x, cal, value: float) -> str:
    """How a job's search for `target.macs=value` lands with this method on this model."""
    from sweep import targets
    from sweep.errors import one_line

    goal = targets.Target("macs", value, 0.02, 12, 0.95)
    try:
        found = targets.method_search(pruner, model, dense, x, goal, cal)
    except targets.TargetNotReached:
        return "out of reach"
    except Exception as e:  # noqa: BLE001 - the point of the benchmark
        return f"failed: {one_line(e)[:80]}"
    return f"{found.landing} {found.reached:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument(
        "--families", default="", help="comma-separated substrings of family or model names"
    )
    ap.add_argument("--jobs", type=int, default=2, help="models pruned in parallel processes")
    ap.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per prune (and per forward)"
    )
    ap.add_argument(
        "--markdown",
        action="store_true",
        help="also print the coverage table (docs/timm-coverage.md)",
    )
    ap.add_argument(
        "--target-macs", type=float, default=None, help="also search this share of the MACs"
    )
    args = ap.parse_args()
    methods = args.methods.split(",")
    wanted = [w.lower() for w in args.families.split(",") if w]
    todo = [
        (fam, name, kw, methods, args.ratio, args.timeout, args.target_macs)
        for fam, name, kw in FAMILIES
        if not wanted or any(w in fam.lower() or w in name for w in wanted)
    ]
    t0 = time.perf_counter()
    print(
        f"{len(todo)} families x {len(methods)} methods at ratio {args.ratio:g}, {args.jobs} processes"
    )
    results = run_all(todo, args.jobs)
    return report(results, methods, time.perf_counter() - t0, args.markdown, args.target_macs)


def _worker(task: tuple, conn) -> None:
    conn.send(one_model(task))
    conn.close()


def run_all(todo: list[tuple], jobs: int) -> list[Outcome]:
    """Each model in a process of its own, `jobs` at a time: a process the kernel kills (out of memory
    inside one native call, where sweep.limits cannot step in) costs its model's row, not the run."""
    ctx = mp.get_context("spawn")
    pending, running, results = list(todo), {}, []
    while pending or running:
        while pending and len(running) < jobs:
            task = pending.pop(0)
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(task, send))
            proc.start()
            send.close()
            running[proc] = (task, recv)
        time.sleep(0.5)
        for proc, (task, recv) in list(running.items()):
            if recv.poll():
                results += recv.recv()
            elif proc.is_alive():
                continue
            else:
                fam, name, _, methods, *_ = task
                why = f"process killed (exit code {proc.exitcode}; out of memory?)"
                results += [Outcome(fam, name, m, "limit", why) for m in methods]
                print(f"{fam:<22}{name:<30}{'(all)':<15}{'limit':<8}  {why}", flush=True)
            proc.join()
            del running[proc]
    order = {name: i for i, (_, name, _) in enumerate(FAMILIES)}
    return sorted(results, key=lambda o: order.get(o.model, 0))


def _reached(outs: list[Outcome]) -> str:
    """`N/M`: of the M methods that pruned the model, N landed within tolerance of the target."""
    pruned = [o for o in outs if o.status == "pruned"]
    ok = sum(o.landing.startswith(("within", "refined")) for o in pruned)
    return f"{ok}/{len(pruned)}"


def report(
    results: list[Outcome], methods: list[str], seconds: float, markdown: bool, target=None
) -> int:
    by_model: dict[str, list[Outcome]] = {}
    for o in results:
        by_model.setdefault(o.model, []).append(o)
    print()
    print(
        f"{'family':<22}{'model':<30}"
        + "".join(f"{m.removeprefix('dg_')[:9]:>10}" for m in methods)
    )
    mark = {"pruned": "ok", "refused": "n/a", "failed": "FAIL", "limit": "LIMIT"}
    for model, outs in by_model.items():
        print(f"{outs[0].family:<22}{model:<30}" + "".join(f"{mark[o.status]:>10}" for o in outs))
    fams = len(by_model)
    every = sum(all(o.status in ("pruned", "refused") for o in outs) for outs in by_model.values())
    all_pruned = sum(
        all(o.status == "pruned" or (o.status == "refused" and _method_not_for(o)) for o in outs)
        for outs in by_model.values()
    )
    partly = sum(
        any(_kept_whole(o) for o in outs)
        and all(
            o.status == "pruned" or (o.status == "refused" and _method_not_for(o)) for o in outs
        )
        for outs in by_model.values()
    )
    counts = {s: sum(o.status == s for o in results) for s in mark}
    print(
        f"\n{fams} families: {all_pruned} pruned and running with every structural method that applies "
        f"to them ({100 * all_pruned / max(fams, 1):.0f} %; {partly} of them with some layers kept "
        f"whole by some method), {every} pruned or refused with a named "
        f"reason by every method ({100 * every / max(fams, 1):.0f} %); jobs: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; {seconds:.0f} s"
    )
    failed = [o for o in results if o.status in ("failed", "limit")]
    refused = [o for o in results if o.status == "refused" and not _method_not_for(o)]
    for title, rows in (("failed", failed), ("refused (the model)", refused)):
        if rows:
            print(f"\n{title}:")
            for o in rows:
                print(f"  {o.model} {o.method}: {o.detail}")
    if markdown:
        extra = [f"macs={target:g} reached"] if target else []
        print("\n| family | model | " + " | ".join(methods + extra) + " |")
        print("|---|---|" + "---|" * (len(methods) + len(extra)))
        cell = {"pruned": "yes", "refused": "refused", "failed": "**fails**", "limit": "**limit**"}
        for model, outs in by_model.items():
            print(
                f"| {outs[0].family} | `{model}` | "
                + " | ".join(
                    "n/a" if _method_not_for(o) else "part" if _kept_whole(o) else cell[o.status]
                    for o in outs
                )
                + (f" | {_reached(outs)}" if target else "")
                + " |"
            )
    if target:
        print(f"\ntarget.macs={target:g}, per model: methods within ±0.02 / methods that prune it")
        for model, outs in by_model.items():
            misses = [f"{o.method}: {o.landing}" for o in outs if o.status == "pruned"]
            misses = [m for m in misses if not m.split(": ")[1].startswith(("within", "refined"))]
            print(f"  {model:<30}{_reached(outs):>6}  {'; '.join(misses)}")
    return 0


def _kept_whole(o: Outcome) -> bool:
    """Pruned, with some layers the library cannot prune left whole."""
    return o.status == "pruned" and "kept whole:" in o.detail


def _method_not_for(o: Outcome) -> bool:
    """Refused because the method needs what the model has not (BatchNorm, multi-head attention), as
    opposed to a model that structural pruning cannot handle (which these methods refuse too)."""
    return o.status == "refused" and any(why in o.detail for why in NOT_FOR)


# How the methods that need a kind of layer say the model has none (sweep.pruners: BN-scale, heads).
NOT_FOR = (
    "needs BatchNorm",
    "needs multi-head attention",
    "head pruning supports timm's Attention",
)


if __name__ == "__main__":
    sys.exit(main())
