"""Text from a result never becomes markup (issue 21, item 2): a result.json can come from
another machine, so HTML, '|', backticks and newlines in its strings are shown literally and
every table keeps its columns, in report.md and compare.md alike."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from resnest_bench.harness.cli import main
from resnest_bench.harness.report import markdown as md
from tests.test_results import RUN

EXAMPLE = Path(__file__).parent.parent / "reports" / "examples" / "all-runtimes-digits-zen5"
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert('x')</script>"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (IMG, "&lt;img src=x onerror=alert(1)&gt;"),
        (SCRIPT, "&lt;script&gt;alert('x')&lt;/script&gt;"),
        ("a | b", "a \\| b"),
        ("two\nlines\r\nhere", "two lines  here"),
        ("`code` [link](javascript:x)", "\\`code\\` \\[link\\](javascript:x)"),
        ("back\\slash & co", "back\\\\slash &amp; co"),
        ("tab\tnul\x00sep\u2028end", "tab nul sep end"),
        ("resnest50d-basic 20261207-024203-gpu", "resnest50d-basic 20261207-024203-gpu"),
    ],
)
def test_escape_shows_text_literally_on_one_line(text, shown) -> None:
    assert md.escape(text) == shown


def _hostile_result(run_id: str) -> dict:
    result = json.loads((EXAMPLE / "result.json").read_text())
    run = copy.deepcopy(RUN)
    run["model"]["name"] = f"{IMG}|x"
    run["dataset"]["name"] = f"data\n# not a heading {SCRIPT}"
    result["training"] = {"runs": [run], "transfer": None}
    result["kind"] = "suite"
    result["run_id"] = run_id
    result["command"] = ["resnest-bench", "run", "`x`|<b>bold</b>\n- item"]
    result["environment"]["cpu"]["model"] = f"CPU | {SCRIPT}"
    result["config"]["suite"] = f"suite\n{IMG}"
    result["config"]["settings"]["model"]["names"] = [f"{IMG}|y"]
    result["deployment"]["targets"][2]["target"] = "ort-cpu:<i>fp32</i>|z"
    result["failed_steps"] = {"deploy": f"reason\n| a | b |\n{SCRIPT}"}
    return result


def _check_markdown(text: str) -> None:
    """No raw HTML, no line a hostile string began, and every table row as wide as its head."""
    assert "<" not in text and ">" not in text.replace("&gt;", "")
    assert "# not a heading" not in [line.lstrip("# ") for line in text.splitlines()]
    assert not any(line.startswith(("- item", "| a | b", "<")) for line in text.splitlines())
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    columns = None
    for line in text.splitlines():
        if not line.startswith("|"):
            columns = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line))
        columns = columns or cells
        assert cells == columns, line


def test_report_and_compare_of_hostile_results_show_the_text_not_markup(tmp_path, capsys) -> None:
    runs = []
    for n, run_id in enumerate([f"run-{IMG}", "run|two\nlines"]):
        folder = tmp_path / f"r{n}"
        folder.mkdir()
        (folder / "result.json").write_text(json.dumps(_hostile_result(run_id)))
        assert main(["report", str(folder)]) == 0
        text = (folder / "report.md").read_text()
        _check_markdown(text)
        assert "Model &lt;img src=x onerror=alert(1)&gt;\\|y" in text
        assert "- deploy: FAILED: reason \\| a \\| b \\| &lt;script&gt;" in text
        runs.append(str(folder))
    assert main(["compare", *runs, "--reports", str(tmp_path / "c")]) == 0
    (compare,) = (tmp_path / "c").glob("*-compare/compare.md")
    text = compare.read_text()
    _check_markdown(text)
    assert "- `run-&lt;img src=x onerror=alert(1)&gt;`" in text
    assert "run\\|two lines" in text
    capsys.readouterr()


def test_escaped_reaches_every_string_of_a_record_and_nothing_else() -> None:
    from typing import NamedTuple

    class Pair(NamedTuple):
        name: str
        size: int

    record = {"<k>": [("a|b", 1.5), Pair("`x`", 3)], "n": None, "ok": True}
    assert md.escaped(record) == {
        "&lt;k&gt;": [("a\\|b", 1.5), Pair("\\`x\\`", 3)],
        "n": None,
        "ok": True,
    }
