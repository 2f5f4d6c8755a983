"""The CLI: thin commands, one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from tests.test_models import PUBLISHED_PARAMS


def test_models_json_lists_every_config_with_published_params(capsys) -> None:
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    for name, params in PUBLISHED_PARAMS.items():
        assert rows[name]["params"] == params
    assert rows["resnest50d"]["macs"] == pytest.approx(5.4e9, rel=0.02)
    assert {"resnest50d-basic", "resnest-tiny"} <= rows.keys()


def test_bad_value_is_one_line_error_exit_2(capsys) -> None:
    assert main(["models", "--num-classes", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "num_classes must be >= 1" in err
