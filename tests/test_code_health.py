"""The code base stays in the shape its docs describe (docs/development.md, the layout)."""

from __future__ import annotations

import ast
import re

from helpers.cli import ROOT
from helpers.code_health import MAX_FILE_LINES, MAX_FUNCTION_LINES, long_files, long_functions


def test_no_long_functions_in_src():
    assert long_functions(ROOT / "src") == [], f"functions over {MAX_FUNCTION_LINES} lines"


def test_long_function_check_can_fail(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n")
    assert long_functions(tmp_path) == [f"m.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]


def test_no_long_files_in_src():
    assert long_files(ROOT / "src") == [], f"files over {MAX_FILE_LINES} lines: split by concern"


def test_long_file_check_can_fail(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n" * (MAX_FILE_LINES + 1))
    (tmp_path / "ok.py").write_text("x = 1\n" * MAX_FILE_LINES)
    assert long_files(tmp_path) == [f"pkg/m.py ({MAX_FILE_LINES + 1} lines)"]


def test_the_job_recipe_reads_top_to_bottom():
    """run_job's recipe of stages stays short enough to read in one go."""
    tree = ast.parse((ROOT / "src" / "sweep" / "job" / "run.py").read_text())
    (recipe,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_stages"]
    assert recipe.end_lineno - recipe.lineno + 1 < 30


def test_config_values_are_not_cast_in_the_job():
    """Typed config: numbers arrive as numbers, so the job code has no int()/float() of config values."""
    casts = re.compile(r"\b(int|float)\((cfg|job\.cfg|model_cfg|self\.cfg|settings)(\.\w+)*\)")
    for path in (ROOT / "src" / "sweep").rglob("*.py"):
        hits = [line for line in path.read_text().splitlines() if casts.search(line)]
        assert hits == [], (path.name, hits)


def test_private_hydra_api_only_where_explained():
    for path in (ROOT / "src").rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"hydra\._internal", text):
            before = text[: m.start()].splitlines()[-6:]
            assert any("no public API" in line for line in before), (
                f"{path.name}: hydra._internal without a why"
            )
