"""The README's first commands work for a newcomer on a stock machine (issue 25): torch comes
from PyTorch's CPU index before the editable install (a plain pip resolves torch to the CUDA
build), the prerequisites are named, and the test command is the one CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FIRST_SCREEN = README.split("## What a report says")[0]


def test_torch_comes_from_the_cpu_index_before_the_editable_install():
    lines = [line.strip() for line in FIRST_SCREEN.splitlines()]
    torch = lines.index(
        "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    )
    editable = next(i for i, line in enumerate(lines) if line.startswith("pip install -e "))
    assert torch < editable


def test_prerequisites_and_the_two_commands_come_first():
    assert "Docker Engine with Compose v2" in FIRST_SCREEN
    assert "NVIDIA Container Toolkit" in FIRST_SCREEN
    assert FIRST_SCREEN.count("docker compose run --rm bench-") == 2


def test_the_test_command_is_the_one_ci_runs():
    assert "python -m pytest -q\n" in FIRST_SCREEN
    assert "\npython -m pytest -q\n" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_is_one_screen_with_the_commands_first():
    """Issue 23: at most ~150 lines, the two commands in the first 30, the rest in docs/."""
    lines = README.splitlines()
    assert len(lines) <= 150
    first = "\n".join(lines[:30])
    assert first.count("docker compose run --rm bench-") == 2


def test_every_doc_the_readme_links_exists():
    import re

    links = re.findall(r"\]\((docs/[^)]+)\)", README)
    assert links and all((ROOT / link).is_file() for link in links), links
    assert {p.name for p in (ROOT / "docs").glob("*.md")} <= {Path(link).name for link in links}
