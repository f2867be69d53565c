"""Static checks of the source tree (used by tests/test_code_health.py)."""

from __future__ import annotations

import ast
from pathlib import Path

MAX_FUNCTION_LINES = 50
MAX_FILE_LINES = 400


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """`path:line name (N lines)` for every function or method in `root` longer than `limit` lines
    (decorators and docstring included, as a reader sees it)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = node.end_lineno - first + 1
                if n > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({n} lines)")
    return found


def long_files(root: Path, limit: int = MAX_FILE_LINES) -> list[str]:
    """`path (N lines)` for every Python file in `root` longer than `limit` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n > limit:
            found.append(f"{path.relative_to(root)} ({n} lines)")
    return found


MAX_POSITIONAL = 4


def many_positional_calls(root: Path, limit: int = MAX_POSITIONAL) -> list[str]:
    """`path:line` for every call in `root` passing more than `limit` positional arguments (options and
    results go by keyword). A logger's call is a format string and its values, not options."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            logging = isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[0] == "log"
            if isinstance(node, ast.Call) and not logging:
                positional = [a for a in node.args if not isinstance(a, ast.Starred)]
                if len(positional) > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def short_module_aliases(root: Path) -> list[str]:
    """`path:line module as X` for every module imported under a one- or two-letter alias (`np`, `nn`
    and `tp`, the libraries' own conventions, aside)."""
    usual = {"np", "nn", "tp", "pd", "ov", "mp"}
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.asname and len(alias.asname) <= 2 and alias.asname not in usual:
                        found.append(
                            f"{path.relative_to(root)}:{node.lineno} {alias.name} as {alias.asname}"
                        )
    return found


def layers_drawn(markdown: str) -> list[str]:
    """The layers drawn in docs/development.md's Architecture section: its first code block's lines
    that start with a package, up to the first run of two spaces."""
    section = markdown.split("### Layers", 1)[1]
    block = section.split("```", 2)[1]
    return [
        line.split("  ", 1)[0].strip() for line in block.splitlines() if line.startswith("sweep.")
    ]
