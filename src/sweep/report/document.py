"""`python -m sweep.report`: the benchmark document, rendered from what jobs logged to MLflow (and
nothing else). The same store gives byte-identical Markdown.

    python -m sweep.report [--tracking-uri URI] [--experiment NAME] [--sweep ID] [--out DIR]
                           [--baseline SWEEP_ID] [--latency-threshold 0.05] [--accuracy-threshold 0.01]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweep import tracking
from sweep.errors import SweepConfigError
from sweep.report import (
    cells,
    compare,
    figures,
    int8_section,
    profile_section,
    recovery_section,
    rows,
    sections,
)


def render(
    sweep: rows.Sweep,
    figure_files: dict[str, str],
    baseline: rows.Sweep | None = None,
    latency_threshold: float = 0.05,
    accuracy_threshold: float = 0.01,
) -> str:
    lines = sections.header(sweep) + summary(sweep) + sections.original(sweep)
    lines += compare.matched_cost(sweep) + int8_section.section(sweep)
    lines += profile_section.section(sweep) + recovery_section.section(sweep)
    lines += sections.method_sections(sweep)
    if figure_files:
        lines += ["## Figures", ""]
        for title, path in figure_files.items():
            lines += [f"### {title}", "", f"![{title}]({path})", ""]
    if baseline is not None:
        lines += regressions(sweep, baseline, latency_threshold, accuracy_threshold)
    lines += compare.checklist(sweep)
    return "\n".join(lines).rstrip() + "\n"


def summary(sweep: rows.Sweep) -> list[str]:
    """The best methods at each cost, and (with INT8 figures) what changes under INT8."""
    return compare.summary(sweep) + int8_section.summary(sweep)


def regressions(
    sweep: rows.Sweep, baseline: rows.Sweep, latency_threshold: float, accuracy_threshold: float
) -> list[str]:
    base = {r.point: r for r in baseline.rows if r.status == "FINISHED"}
    lines = [
        f"## Compared with sweep `{baseline.sweep_id}`",
        "",
        f"Regression: latency up by more than {100 * latency_threshold:.1f} % or top-1 down by more than "
        f"{100 * accuracy_threshold:.1f} points.",
        "",
        "| model | pruner | cost | latency then → now | top-1 then → now | regression |",
        "|---|---|---|---|---|---|",
    ]
    found = []
    for r in sweep.rows:
        b = base.get(r.point)
        if b is None or r.status != "FINISHED" or "latency_ms" not in r.metrics:
            continue
        lat0, lat1 = b.metrics["latency_ms"], r.metrics["latency_ms"]
        acc0, acc1 = b.metrics.get("accuracy_top1", 0.0), r.metrics.get("accuracy_top1", 0.0)
        why = []
        if lat1 > lat0 * (1 + latency_threshold):
            why.append(f"latency +{100 * (lat1 / lat0 - 1):.1f} %")
        if acc1 < acc0 - accuracy_threshold:
            why.append(f"top-1 {100 * (acc1 - acc0):+.1f} pt")
        lines.append(
            f"| {r.label or r.model} | {r.method} | {r.level} | {lat0:.2f} → {lat1:.2f} ms | "
            f"{cells.fmt_pct(acc0)} → {cells.fmt_pct(acc1)} | {'; '.join(why)} |"
        )
        if why:
            found.append(f"- {rows.point_name(r.point)}: {'; '.join(why)}")
    gone = sorted(
        set(base) - {r.point for r in sweep.rows if r.status == "FINISHED"},
        key=lambda k: (rows.model_key(k[0]), k[1], rows.level_key(k[2]), k[3]),
    )
    found += [f"- {rows.point_name(k)}: finished in the baseline, not in this sweep" for k in gone]
    lines += ["", "### Regressions", ""] + (found or ["None."]) + [""]
    return lines


def write_report(
    uri: str,
    experiment: str,
    sweep_id: str | None,
    out_dir: Path,
    baseline: str | None = None,
    latency_threshold: float = 0.05,
    accuracy_threshold: float = 0.01,
    stale_after_s: float = tracking.DEFAULT_STALE_AFTER_S,
) -> Path:
    for key, name in (("--sweep", sweep_id), ("--baseline", baseline)):
        if name is not None:
            tracking.check_name(key, name)
    uri = tracking.resolve_uri(uri)
    tracking.check_reachable(uri)
    tracking.fail_stale(
        uri, experiment, stale_after_s
    )  # a dead job's run shows as failed, not running
    sweep = rows.load_sweep(uri, experiment, sweep_id)
    base = rows.load_sweep(uri, experiment, baseline) if baseline else None
    out = out_dir / sweep.sweep_id
    out.mkdir(parents=True, exist_ok=True)
    doc = render(
        sweep,
        figures.render(sweep, out),
        baseline=base,
        latency_threshold=latency_threshold,
        accuracy_threshold=accuracy_threshold,
    )
    path = out / "benchmark.md"
    path.write_text(doc)
    # next to the data it was made from: one click from the sweep's row in the MLflow UI
    tracking.log_report(
        uri, experiment, sweep_id=sweep.sweep_id, folder=out, summary="\n".join(summary(sweep))
    )
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m sweep.report", description="Render the benchmark document from MLflow."
    )
    ap.add_argument("--tracking-uri", default=None, help=tracking.DEFAULT_URI_HELP)
    ap.add_argument("--experiment", default=tracking.DEFAULT_EXPERIMENT)
    ap.add_argument(
        "--sweep", default=None, help="sweep_id (default: the newest sweep in the experiment)"
    )
    ap.add_argument(
        "--out", default="reports", type=Path, help="output folder (a sub-folder per sweep)"
    )
    ap.add_argument("--baseline", default=None, help="an earlier sweep_id to compare with")
    ap.add_argument(
        "--latency-threshold",
        type=float,
        default=0.05,
        help="relative latency increase that is a regression",
    )
    ap.add_argument(
        "--accuracy-threshold",
        type=float,
        default=0.01,
        help="top-1 drop (fraction) that is a regression",
    )
    args = ap.parse_args(argv)
    try:
        path = write_report(
            args.tracking_uri,
            args.experiment,
            sweep_id=args.sweep,
            out_dir=args.out,
            baseline=args.baseline,
            latency_threshold=args.latency_threshold,
            accuracy_threshold=args.accuracy_threshold,
        )
    except SweepConfigError as e:
        print(f"sweep.report: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(path)
    uri = tracking.resolve_uri(args.tracking_uri)
    parent = tracking.parent_run_of(uri, args.experiment, path.parent.name)
    if parent is not None:
        print(f"logged as artifacts report/ of the sweep's run {parent}")


if __name__ == "__main__":
    main()
