"""Hostile input, third pass (issue 21): names that would escape the reports folder, resumes
of folders that are not runs, and cleanup that deletes only what a run marked as its own.
Every refusal is one `resnest-bench: error:` line and exit 2, and touches nothing."""

from __future__ import annotations

import os

import pytest

from resnest_bench.harness import runs
from resnest_bench.harness.cli import main
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.names import checked_name
from tests.test_reliability import _one_error, _train


@pytest.mark.parametrize(
    "bad", ["../victim", "../../../victim", "/tmp/victim", "a/b", "..", ".hidden", "", "a\nb"]
)
def test_names_that_are_not_one_plain_component_are_refused(bad) -> None:
    with pytest.raises(BenchError, match=r"^run id .* must be a plain name \(letters, digits"):
        checked_name(bad, "run id")


@pytest.mark.parametrize("good", ["20261207-024203-all-runtimes", "gpu", "cpu-runtime.v2_1"])
def test_plain_names_pass_unchanged(good) -> None:
    assert checked_name(good, "run id") == good


@pytest.mark.parametrize("escape", ["../../../victim", "{victim}"])
def test_resume_outside_the_reports_folder_touches_nothing(tmp_path, capsys, escape) -> None:
    reports = tmp_path / "a" / "b" / "reports"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("years of work")
    run_id = escape.format(victim=victim)
    assert main([*_train(reports, tmp_path / "d"), "--resume", run_id]) == 2
    line = _one_error(capsys)
    assert line.startswith("resnest-bench: error: run id ") and "must be a plain name" in line
    assert sorted(p.name for p in victim.iterdir()) == ["thesis.txt"]
    assert (victim / "thesis.txt").read_text() == "years of work"


def test_resume_of_a_folder_the_harness_did_not_create_is_refused(tmp_path, capsys) -> None:
    reports = tmp_path / "r"
    foreign = reports / "work" / "my-notes"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("keep me")
    assert main([*_train(reports, tmp_path / "d"), "--resume", "my-notes"]) == 2
    line = _one_error(capsys)
    assert "refusing to resume" in line and "not a resnest-bench run folder" in line
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_resume_of_a_run_without_a_checkpoint_is_refused(tmp_path, capsys) -> None:
    reports = tmp_path / "r"
    claim = runs.reserve(reports, "train")
    os.close(claim.fd)  # killed before its first checkpoint
    assert main([*_train(reports, tmp_path / "d"), "--resume", claim.run_id]) == 2
    line = _one_error(capsys)
    assert f"nothing to resume: {claim.work} holds no checkpoint" in line
    assert not (reports / claim.run_id).exists()  # no fresh training was published


def test_cleanup_deletes_only_a_folder_marked_by_its_run(tmp_path) -> None:
    reports = tmp_path / "r"
    claim = runs.reserve(reports, "train")
    (claim.work / "checkpoint.pt").write_bytes(b"x")
    (claim.work / runs.MARKER_NAME).write_text("another-run\n")
    runs.discard(claim)
    assert (claim.work / "checkpoint.pt").is_file()
    (claim.work / runs.MARKER_NAME).write_text(f"{claim.run_id}\n")
    runs.discard(claim)
    assert not claim.work.exists()
    os.close(claim.fd)


@pytest.mark.parametrize(
    ("suite", "says"),
    [
        ("../gpu", "suite name '../gpu' must be a plain name"),
        ("x/../../gpu", "suite name 'x/../../gpu' must be a plain name"),
        ("/", "cannot read suite file /: [Errno 21] Is a directory"),
    ],
)
def test_suite_names_with_path_parts_are_refused_by_name(capsys, suite, says) -> None:
    assert main(["run", suite, "--quick"]) == 2
    assert _one_error(capsys).startswith(f"resnest-bench: error: {says}")


def test_a_suite_file_whose_name_is_a_path_is_refused(tmp_path, capsys) -> None:
    suite = tmp_path / "evil.toml"
    suite.write_text('name = "../../outside"\nsteps = ["train"]\n')
    assert main(["run", str(suite), "--reports", str(tmp_path / "r")]) == 2
    assert "name: must be a plain name" in _one_error(capsys)
    assert not (tmp_path / "outside").exists()
