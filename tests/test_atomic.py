"""Atomic writes: content lands whole, and a crash leaves the old file and no debris."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.store import atomic
from resnest_bench.harness.store.atomic import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    staged_dir,
)


def test_write_bytes_text_json_round_trip(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "sub" / "b.txt", "héllo")
    atomic_write_json(tmp_path / "c.json", {"x": [1, 2.5, None]})
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "sub" / "b.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": [1, 2.5, None]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "c.json", "sub"]


def test_new_file_gets_umask_mode_not_mkstemp_0600(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_text(target, "x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~atomic._UMASK


def test_crash_during_replace_keeps_old_content_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    target.write_text("old")

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_json_refuses_nan_and_unserialisable_without_touching_file(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")
    for bad in ({"loss": float("nan")}, {"x": object()}):
        with pytest.raises(BenchError, match="not JSON-serialisable"):
            atomic_write_json(target, bad)
    assert target.read_text() == "old"
    assert len(list(tmp_path.iterdir())) == 1


def test_torch_save_round_trip_and_failed_pickle_keeps_old(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"w": torch.arange(3)}, path)
    assert torch.equal(torch.load(path)["w"], torch.arange(3))
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for a lambda
        atomic_torch_save({"f": lambda: 0}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_staged_dir_publishes_on_success(tmp_path):
    final = tmp_path / "runs" / "r1"
    with staged_dir(final) as stage:
        assert stage.parent == final.parent and stage.name.startswith(".")
        assert not final.exists()
        (stage / "result.json").write_text("{}")
    assert (final / "result.json").read_text() == "{}"
    assert [p.name for p in final.parent.iterdir()] == ["r1"]


def test_staged_dir_removes_everything_on_exception(tmp_path):
    final = tmp_path / "r1"
    with pytest.raises(RuntimeError, match="crash"), staged_dir(final) as stage:
        (stage / "half.json").write_text("{")
        raise RuntimeError("crash")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_staged_dir_refuses_existing_final(tmp_path):
    final = tmp_path / "r1"
    final.mkdir()
    (final / "keep").write_text("mine")
    with pytest.raises(BenchError, match="already exists"), staged_dir(final):
        pass
    assert (final / "keep").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["r1"]


def test_staged_dir_refuses_final_that_appeared_meanwhile(tmp_path):
    final = tmp_path / "r1"
    with pytest.raises(BenchError, match="appeared"), staged_dir(final) as stage:
        (stage / "x").write_text("ours")
        final.mkdir()
        (final / "theirs").write_text("theirs")
    assert [p.name for p in final.iterdir()] == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["r1"]
