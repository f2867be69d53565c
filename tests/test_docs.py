"""The documentation agrees with the code: the generated reference pages are current, every MLflow name
the code defines is documented, and the README stays a front door whose links lead into the site."""

from __future__ import annotations

import re

from helpers.cli import ROOT
from sweep import tracking
from sweep.cli import reference


def long_cells(markdown: str, limit: int = 300) -> list[str]:
    """The first 40 characters of every table cell longer than `limit`."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return [c.strip()[:40] for row in rows for c in row.split("|") if len(c.strip()) > limit]


def test_reference_pages_match_the_code(capsys):
    assert reference.main([str(ROOT / "docs" / "reference"), "--check"]) == 0, (
        capsys.readouterr().err
    )


def test_a_page_that_disagrees_with_the_code_is_caught(tmp_path, capsys):
    reference.main([str(tmp_path)])
    page = tmp_path / "config.md"
    page.write_text(
        page.read_text().replace("| `ratio` | float | `0.5` |", "| `ratio` | float | `0.4` |")
    )
    assert reference.main([str(tmp_path), "--check"]) == 1
    assert "config.md" in capsys.readouterr().err


def test_the_schema_page_lists_every_name_defined():
    page = reference.schema_page()
    for entry in tracking.SCHEMA:
        assert f"| {entry.title} | {entry.meaning} |" in page, entry.names


def test_readme_is_a_front_door_into_the_site():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 10
    for link in links:
        assert (ROOT / link).is_file(), link
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):
        assert str(page.relative_to(ROOT / "docs")) in nav, f"{page} is not in mkdocs.yml's nav"


def test_benchmarks_page_is_one_short_row_per_benchmark():
    """What, the headline with its date, the command: no cell over 300 characters (the full readings
    are on the pages they belong to)."""
    assert long_cells((ROOT / "docs" / "benchmarks.md").read_text()) == []


def test_long_cell_check_can_fail():
    assert long_cells(f"| a | {'x' * 301} | b |\n") == [("x" * 301)[:40]]
