"""The profile's figure: per runtime, the layers behind most of the gap, dense beside pruned time."""

from __future__ import annotations

from pathlib import Path

from sweep.measure.layer_table import ALIGN, Table

SHOWN = 8  # layers per runtime: those with the largest gap


def plot(tables: list[Table], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(tables), 1, figsize=(7.5, 1.2 + 0.38 * SHOWN * len(tables)), squeeze=False
    )
    for ax, table in zip(axes[:, 0], tables):
        rows = table.rows[:SHOWN][::-1]
        y = range(len(rows))
        ax.barh([i + 0.2 for i in y], [r.dense_ms for r in rows], 0.4, label="dense", color="0.6")
        ax.barh([i - 0.2 for i in y], [r.pruned_ms for r in rows], 0.4, label="pruned", color="C0")
        labels = [
            f"{r.layer} ({r.op}{'' if r.aligned is not False else f', not x{ALIGN}'})" for r in rows
        ]
        ax.set_yticks(list(y), labels, fontsize=7)
        ax.set_title(f"{table.runtime}: layers with the largest gap", fontsize=9)
        ax.set_xlabel("ms per forward (median)", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100, metadata={"Software": None})
    plt.close(fig)
