"""A picture of what the sweep link shows: a tracking server over a store, the newest sweep's (or a given
sweep's) link opened in Debian's Chromium, headless, and saved as a PNG (the docs' picture). `--page
models`: the experiment's Models view (the logged models, with their metrics); `--page recovery`: the
`finetune_top1` history of one model's runs at one cost, compared (`--runs-like tiny_cnn/ --cost
macs=0.5`).

    python scripts/ui_screenshot.py [--store sqlite:///mlflow.db] [--sweep ID] [--out docs/mlflow-ui-sweep.png]
                                    [--page sweep|models|recovery]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

from sweep import tracking
from sweep.cli import server


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=tracking.DEFAULT_URI)
    ap.add_argument("--experiment", default=tracking.DEFAULT_EXPERIMENT)
    ap.add_argument("--sweep", default=None, help="default: the newest sweep")
    ap.add_argument("--out", type=Path, default=Path("docs/mlflow-ui-sweep.png"))
    ap.add_argument("--size", default="1800,900", help="the window, pixels: width,height")
    ap.add_argument("--page", choices=("sweep", "models", "recovery"), default="sweep")
    ap.add_argument("--runs-like", default="tiny_cnn/", help="recovery: runs whose name starts so")
    ap.add_argument("--cost", default="macs=0.5", help="recovery: runs at this cost")
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    sweep_id = args.sweep or tracking.newest_sweep(args.store, args.experiment)
    if sweep_id is None:
        print(f"no sweep in {args.store}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="sweep-shot-"))
    port = server.free_port()
    proc = server.spawn(args.store, port, work / "server.log", artifacts=str(work / "artifacts"))
    try:
        exp_id, view = tracking.share_sweep_view(args.store, args.experiment, sweep_id)
        link = _link(args, f"http://127.0.0.1:{port}", exp_id, view, sweep_id)
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                f"--user-data-dir={work / 'profile'}",
                f"--window-size={args.size}",
                "--virtual-time-budget=25000",
                f"--screenshot={args.out.resolve()}",
                link,
            ],
            capture_output=True,
            timeout=180,
            check=True,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.out}: sweep {sweep_id}")
    return 0


def _link(args, base: str, exp_id: str, view: str, sweep_id: str) -> str:
    if args.page == "models":
        return f"{base}/#/experiments/{exp_id}/models?workflowType=machine_learning"
    if args.page == "sweep":
        return tracking.sweep_link(base, exp_id, view)
    runs = [
        r.info.run_id
        for r in tracking.search_runs(args.store, args.experiment, sweep_id)
        if r.info.run_name.startswith(args.runs_like)
        and r.info.run_name.endswith(args.cost)
        and tracking.FINETUNE_CURVE_TOP1 in r.data.metrics
    ]
    key = json.dumps(tracking.FINETUNE_CURVE_TOP1)
    query = (
        f"runs={json.dumps(runs)}&metric={quote(key)}&experiments={json.dumps([exp_id])}"
        f"&plot_metric_keys={quote(json.dumps([tracking.FINETUNE_CURVE_TOP1]))}&plot_layout={{}}"
        "&x_axis=step&y_axis_scale=linear&line_smoothness=1&show_point=true"
        "&deselected_curves=[]&last_linear_y_axis_range=[]"
    )
    return f"{base}/#/metric/?{query}&workflowType=machine_learning"


if __name__ == "__main__":
    sys.exit(main())
