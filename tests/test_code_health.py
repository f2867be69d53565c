"""The code base stays in the shape its docs describe (docs/development.md, the layout)."""

from __future__ import annotations

import ast
import re

from helpers.cli import ROOT
from helpers.code_health import (
    MAX_FILE_LINES,
    MAX_FUNCTION_LINES,
    MAX_POSITIONAL,
    layers_drawn,
    long_files,
    long_functions,
    many_positional_calls,
    short_module_aliases,
)


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


def test_the_root_of_the_package_holds_only_what_everything_uses():
    root = {p.stem for p in (ROOT / "src" / "sweep").glob("*.py")}
    assert root == {"__init__", "__main__", "errors", "limits", "provenance"}


def test_the_layers_drawn_in_the_docs_are_the_checked_contracts():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["name"].startswith("sweep: ")]
    drawn = layers_drawn((ROOT / "docs" / "development.md").read_text())
    assert drawn == layers


def test_no_call_passes_more_than_four_positional_arguments():
    assert many_positional_calls(ROOT / "src") == [], f"over {MAX_POSITIONAL}: pass by keyword"


def test_positional_call_check_can_fail(tmp_path):
    calls = (
        "f(1, 2, 3, 4)\ng(1, 2, 3, 4, 5)\nh(*xs, 1, 2, 3, 4)\nlog.info('%s %s %s %s', 1, 2, 3, 4)\n"
    )
    (tmp_path / "m.py").write_text(calls)
    assert many_positional_calls(tmp_path) == ["m.py:2"]


def test_no_short_module_aliases():
    found = [f for d in ("src", "tests", "benchmarks") for f in short_module_aliases(ROOT / d)]
    assert found == [], "one name per module: import it under its own name"


def test_short_alias_check_can_fail(tmp_path):
    (tmp_path / "m.py").write_text("import numpy as np\nfrom sweep import rows as R\n")
    assert short_module_aliases(tmp_path) == ["m.py:2 rows as R"]
