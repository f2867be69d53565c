"""A picture of what the sweep link shows: a tracking server over a store, the newest sweep's (or a given
sweep's) link opened in Debian's Chromium, headless, and saved as a PNG (the docs' picture).

    python scripts/ui_screenshot.py [--store sqlite:///mlflow.db] [--sweep ID] [--out docs/mlflow-ui-sweep.png]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sweep import tracking
from sweep.cli import server


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=tracking.DEFAULT_URI)
    ap.add_argument("--experiment", default=tracking.DEFAULT_EXPERIMENT)
    ap.add_argument("--sweep", default=None, help="default: the newest sweep")
    ap.add_argument("--out", type=Path, default=Path("docs/mlflow-ui-sweep.png"))
    ap.add_argument("--size", default="1800,900", help="the window, pixels: width,height")
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
        link = tracking.sweep_link(f"http://127.0.0.1:{port}", exp_id, view)
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


if __name__ == "__main__":
    sys.exit(main())
