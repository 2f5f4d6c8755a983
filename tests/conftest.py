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
