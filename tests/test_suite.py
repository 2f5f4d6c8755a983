"""Suite files: bundled suites load, --quick merges, bad files name the key and value."""

from __future__ import annotations

import pytest

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.suite import load_suite


@pytest.mark.parametrize("name", ["cpu-runtime", "gpu"])
def test_bundled_suites_load_full_and_quick(name: str) -> None:
    full = load_suite(name)
    quick = load_suite(name, quick=True)
    assert full.name == quick.name == name and quick.quick
    assert "deploy" in full.steps
    assert "quick" not in quick.settings
    assert quick.section("data").get("test_subset", 0) < 10_000


def test_quick_merges_nested_tables_over_the_base() -> None:
    full, quick = load_suite("cpu-runtime"), load_suite("cpu-runtime", quick=True)
    assert (
        quick.section("deploy")["timing"]["min_iters"]
        < full.section("deploy")["timing"]["min_iters"]
    )
    assert quick.section("model")["names"] == full.section("model")["names"]  # untouched keys stay
    assert quick.section("train")["lr"] == full.section("train")["lr"]


def _write(tmp_path, text: str):
    path = tmp_path / "suite.toml"
    path.write_text('name = "mine"\ndevice = "cpu"\nseed = 0\nsteps = ["deploy"]\n' + text)
    return str(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[train]\nepochs = 'ten'\n", r"train.epochs: expected int, got str"),
        ("[train]\nepocs = 3\n", r"train: unexpected key 'epocs'"),
        ("[data]\ndataset = 'imagenet'\n", r"data.dataset: expected one of .*got 'imagenet'"),
        ("[train]\nepochs = 0\n", r"train.epochs must be >= 1, got 0"),
        ("[train]\nlr = -0.1\n", r"train.lr must be > 0, got -0.1"),
        ("[deploy\n", r"is not valid TOML"),
    ],
)
def test_bad_suite_files_name_the_key_and_value(tmp_path, body: str, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        load_suite(_write(tmp_path, body))


def test_unknown_suite_and_missing_file(tmp_path) -> None:
    with pytest.raises(BenchError, match="unknown suite 'nope'; bundled suites: cpu-runtime, gpu"):
        load_suite("nope")
    with pytest.raises(BenchError, match="suite file not found"):
        load_suite(str(tmp_path / "missing.toml"))
