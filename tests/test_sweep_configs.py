"""The mobile-budget configs: exact sizes under TPSNet's 5M-parameter rule, listed by the CLI."""

from __future__ import annotations

import json

import pytest

from resnest_bench import models
from resnest_bench.harness.cli import main
from resnest_bench.models.profile import model_summary

# Exact counts at 10 classes, cifar stem (models.profile on the built network).
MOBILE_PARAMS = {
    "resnest-mobile-s": 1_302_026,
    "resnest-mobile-m": 3_005_450,
    "resnest-mobile-l": 4_693_050,
    "resnest-mobile-s-bottleneck": 957_674,
    "resnest-mobile-m-bottleneck": 1_619_018,
    "resnest-mobile-l-bottleneck": 4_898_810,
}
BUDGET = 5_000_000


def test_every_mobile_config_is_listed_here() -> None:
    mobile = {name for name in models.list_models() if name.startswith("resnest-mobile-")}
    assert mobile == set(MOBILE_PARAMS)


@pytest.mark.parametrize(("name", "params"), MOBILE_PARAMS.items())
def test_mobile_config_params_exact_and_under_budget(name: str, params: int) -> None:
    summary = model_summary(name)
    assert summary["params"] == params
    assert summary["params"] < BUDGET
    assert (summary["num_classes"], summary["stem"], summary["input_size"]) == (10, "cifar", 32)
    assert 0 < summary["macs"] < 1e9  # at 32x32: a mobile budget in compute too


def test_models_command_lists_mobile_configs_with_params_and_macs(capsys) -> None:
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    for name, params in MOBILE_PARAMS.items():
        assert rows[name]["params"] == params
        assert rows[name]["input_size"] == 32
        assert rows[name]["macs"] == model_summary(name)["macs"]
