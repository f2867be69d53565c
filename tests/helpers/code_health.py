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
