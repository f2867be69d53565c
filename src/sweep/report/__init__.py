"""The benchmark document, read from MLflow only (`python -m sweep.report`): `document` renders it from
`sections` (and the INT8 section, `int8_section`), which read runs through `rows`, format them with
`cells`, compare them with `compare`, and draw with `figures`."""

from sweep.report.document import main, regressions, render, summary, write_report

__all__ = ["main", "regressions", "render", "summary", "write_report"]
