"""Shared fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def fake_gpu(monkeypatch):
    """Make a CPU-only torch report one GPU with the given name and compute capability."""

    def install(name: str, cc: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cc)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)

    return install


@pytest.fixture(autouse=True)
def pinned_training_threads(monkeypatch):
    """CPU training picks its threads by the host's load (measure.threads.training_threads,
    tested on its own); tests that compare two trainings bit for bit need the same count."""
    from resnest_bench.harness.train import run

    monkeypatch.setattr(
        run, "training_threads", lambda requested: (requested or 1, "pinned by the tests")
    )
