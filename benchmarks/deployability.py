"""Deployability across timm: can a pruned model of each family ship the ways a job ships it?

One small representative per family (benchmarks/timm_coverage.py's list, random weights, CPU, its own
input size), pruned by `dg_group` at `--ratio`. For each, in a process of its own:
- ONNX export: the shipped file (any batch size; TorchScript, then dynamo), run by ONNX Runtime and
  compared with eager (`sweep.measure.runtimes`'s tolerance);
- OpenVINO: that file compiled and run, compared likewise;
- ONNX Runtime INT8: ONNX Runtime's static quantizer (QDQ, as the quantize stage makes it) and a run;
- MLflow round trip: the ONNX and the PyTorch (torch.export) forms logged as MLflow models to a
  SQLite store, loaded back with `mlflow.pyfunc.load_model`, and their answers compared with eager's.
Each cell is `ok` or the first line of why not. `--markdown` prints the table of docs/timm-coverage.md.

    python benchmarks/deployability.py [--ratio 0.5] [--families ResNet,ViT] [--jobs 2] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timm_coverage import FAMILIES  # noqa: E402  (the same families)

COLUMNS = ("onnx", "openvino", "onnxruntime_int8", "mlflow_onnx", "mlflow_pytorch")


def _agree(got, want) -> str:
    import torch

    from sweep.measure.runtimes import max_abs_diff, outputs_agree

    got = torch.as_tensor(got)
    diff = max_abs_diff(got, want)
    return "ok" if outputs_agree(diff, want, "fp32") else f"answers differ (max |diff| {diff:.3g})"


def _cell(fn) -> str:
    from sweep.errors import first_line

    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - each cell says why
        return first_line(e)[:160]


def _deploy(model, x, work: Path) -> dict[str, str]:
    """Every column for one pruned model (eager's answer on `x` is the reference)."""
    import onnxruntime
    import torch

    from sweep.measure import runtimes

    with torch.no_grad():
        want = model(x)
    path = work / "model.onnx"

    def ort(p) -> object:
        sess = onnxruntime.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]

    def export() -> str:
        runtimes.shipped_onnx(model, x, path)
        return _agree(ort(path), want)

    out = {"onnx": _cell(export)}
    exported = path.exists()
    out["openvino"] = _cell(lambda: _openvino(path, x, want)) if exported else "no ONNX file"
    int8 = lambda: (ort(runtimes.ort_int8(path, [x])), "ok")[1]  # noqa: E731
    out["onnxruntime_int8"] = _cell(int8) if exported else "no ONNX file"
    store = f"sqlite:///{work / 'mlflow.db'}"
    for form in ("onnx", "pytorch"):
        if form == "onnx" and not exported:
            out["mlflow_onnx"] = "no ONNX file"
            continue
        out[f"mlflow_{form}"] = _cell(lambda f=form: _round_trip(store, model, x, want, path, f))
    return out


def _openvino(path: Path, x, want) -> str:
    import openvino

    # FP32 as the jobs time it (OpenVINO's CPU default may run bf16 where the CPU has it)
    compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return _agree(compiled(x.numpy())[0], want)


def _round_trip(store: str, model, x, want, path: Path, form: str) -> str:
    """The form logged as an MLflow model and loaded back with pyfunc: does it answer as eager?"""
    import mlflow

    from sweep import tracking

    exp = tracking.init_store(store, "deployability")
    run = tracking.client(store).create_run(exp)
    made = tracking.ModelForm(
        role="pruned",
        form=form,
        example=x.numpy(),
        output=want.numpy(),
        onnx_file=path,
        module=model,
    )
    logged = tracking.log_model(store, run.info.run_id, exp, made)
    if logged.error:
        return logged.error
    mlflow.set_tracking_uri(store)
    got = mlflow.pyfunc.load_model(f"models:/{logged.model_id}").predict(x.numpy())
    return _agree(got["output"] if isinstance(got, dict) else got, want)


def one_model(args: tuple) -> dict:
    """The pool's task: prune one family's model, then every column."""
    family, name, kwargs, ratio = args
    import timm
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from sweep.errors import first_line
    from sweep.pruners.base import Calibration

    torch.manual_seed(0)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    row = {"family": family, "model": name}
    try:
        model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
        x = torch.randn(2, *model.pretrained_cfg.get("input_size", (3, 224, 224)))
        pruner = instantiate(OmegaConf.load(ROOT / "conf" / "pruner" / "dg_group.yaml"))
        cal = Calibration([(x, torch.zeros(len(x), dtype=torch.long))])
        pruner.check(model, name, x[:1])
        model = pruner.prune(model, ratio, x[:1], cal).eval()
    except Exception as e:  # noqa: BLE001 - the row says why
        return row | {c: f"not pruned: {first_line(e)[:120]}" for c in COLUMNS}
    with tempfile.TemporaryDirectory() as tmp:
        row |= _deploy(model, x, Path(tmp))
    cells = "  ".join(f"{c}={row[c][:60]}" for c in COLUMNS)
    print(f"{family:<22}{name:<30}{time.perf_counter() - t0:6.1f}s  {cells}", flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--families", default=None, help="comma-separated family names")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    chosen = set(args.families.split(",")) if args.families else None
    todo = [(f, n, kw, args.ratio) for f, n, kw in FAMILIES if chosen is None or f in chosen]
    import concurrent.futures
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
        rows = list(pool.map(one_model, todo))
    ok = {c: sum(r[c] == "ok" for r in rows) for c in COLUMNS}
    print(f"{len(rows)} models: " + ", ".join(f"{c} {n}/{len(rows)}" for c, n in ok.items()))
    if args.markdown:
        print("\n| family | model | " + " | ".join(COLUMNS) + " |")
        print("|---|---|" + "---|" * len(COLUMNS))
        for r in rows:
            cells = " | ".join(r[c].replace("|", "/") for c in COLUMNS)
            print(f"| {r['family']} | `{r['model']}` | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
