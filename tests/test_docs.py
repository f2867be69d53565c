"""The documentation agrees with the code: the generated reference pages are current, every MLflow name
the code defines is documented, and the README stays a front door whose links lead into the site."""

from __future__ import annotations

import re

from helpers.cli import ROOT
from sweep import reference, runschema, tracking


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


def _documented() -> set[str]:
    text = " ".join(
        [runschema.INTRO, runschema.PARENT_RUN, runschema.EXPERIMENT, runschema.ARTIFACTS]
        + [names for names, _ in runschema.PARAMS + runschema.METRICS + runschema.TAGS]
    )
    return set(re.findall(r"`(?:<runtime>/)?([^`]+)`", text))


def _defined() -> set[str]:
    names = set()
    for attr, value in vars(tracking).items():
        if not attr.isupper() or not attr.startswith(("TAG_", "PARAM_", "METRIC_")):
            continue
        names.update([value] if isinstance(value, str) else value)
    for group in ("METRICS_PER_MODEL", "REQUIRED_METRICS", "RUNTIME_METRICS", "STEP_METRICS"):
        names.update(getattr(tracking, group))
    return names


def test_every_mlflow_name_the_code_defines_is_in_the_schema():
    documented = _documented()
    missing = sorted(
        n for n in _defined() if n not in documented and n.removeprefix("dense_") not in documented
    )
    assert not missing, f"add to sweep/runschema.py: {missing}"


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
