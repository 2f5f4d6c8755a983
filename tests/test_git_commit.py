"""The commit an image records (docker/git_commit.py, run while it is built) is the one git
itself names, for a branch ref loose or packed and for a detached HEAD."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
SCRIPT = Path(__file__).resolve().parents[1] / "docker" / "git_commit.py"


def _module():
    spec = importlib.util.spec_from_file_location("git_commit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_recorded_commit_is_gits(tmp_path):
    commit = _module().commit
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    assert commit(repo / ".git") is None  # no commit yet: nothing, not a guess
    (repo / "f").write_text("1")
    _git(repo, "add", "f")
    _git(repo, "commit", "-qm", "one")
    assert commit(repo / ".git") == _git(repo, "rev-parse", "HEAD")  # a loose ref
    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert commit(repo / ".git") == _git(repo, "rev-parse", "HEAD")  # packed-refs
    (repo / "f").write_text("2")
    _git(repo, "commit", "-qam", "two")
    _git(repo, "checkout", "-q", "--detach", "HEAD~1")
    assert commit(repo / ".git") == _git(repo, "rev-parse", "HEAD")  # detached
    assert commit(tmp_path / "no-such" / ".git") is None
