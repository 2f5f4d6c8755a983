"""Suite files: bundled suites load, --quick merges, bad files name the key and value."""

from __future__ import annotations

import pytest

from resnest_bench.harness.config import load_suite, step_suite
from resnest_bench.harness.errors import BenchError


@pytest.mark.parametrize("name", ["cpu-runtime", "gpu"])
def test_bundled_suites_load_full_and_quick(name: str) -> None:
    full, path = load_suite(name)
    quick, quick_path = load_suite(name, quick=True)
    assert full.name == quick.name == name and path == quick_path and quick != full
    assert "deploy" in full.steps
    assert "quick" not in quick.model_dump()
    assert (quick.data.test_subset or 0) < 10_000
    # --quick shortens, never narrows: every runtime the full run times is timed (or skipped
    # with its reason) in a quick one too
    assert quick.deploy.runtimes == full.deploy.runtimes


def test_quick_merges_nested_tables_over_the_base() -> None:
    (full, _), (quick, _) = load_suite("cpu-runtime"), load_suite("cpu-runtime", quick=True)
    assert quick.deploy.timing.min_iters < full.deploy.timing.min_iters
    assert quick.model.names == full.model.names  # untouched keys stay
    assert quick.train.lr == full.train.lr


def test_overrides_merge_over_the_file_and_are_validated() -> None:
    suite, _ = load_suite("cpu-runtime", overrides={"train": {"target_accuracy": 0.5}})
    assert suite.train.target_accuracy == 0.5 and suite.train.lr == 0.05
    with pytest.raises(BenchError, match=r"train.target_accuracy: .*got 2"):
        load_suite("cpu-runtime", overrides={"train": {"target_accuracy": 2}})


def test_step_suite_uses_the_section_defaults() -> None:
    suite = step_suite("train", {"model": {"names": ["resnest-tiny"]}})
    assert suite.steps == ("train",) and suite.train.epochs == 250
    assert suite.transfer.step_size == 60 and suite.data.small_subset == 50


def _write(tmp_path, text: str):
    path = tmp_path / "suite.toml"
    path.write_text('name = "mine"\ndevice = "cpu"\nseed = 0\nsteps = ["deploy"]\n' + text)
    return str(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[train]\nepochs = 'ten'\n", r"train.epochs: Input should be a valid integer.*got 'ten'"),
        ("[train]\nepocs = 3\n", r"train.epocs: unknown key"),
        ("[data]\ndataset = 'imagenet'\n", r"data.dataset: Input should be .*got 'imagenet'"),
        (
            "[train]\nepochs = 0\n",
            r"train.epochs: Input should be greater than or equal to 1, got 0",
        ),
        ("[train]\nlr = -0.1\n", r"train.lr: Input should be greater than 0, got -0.1"),
        ("[deploy]\nthroughput_batches = [8, 'x']\n", r"deploy.throughput_batches\[1\]: .*got 'x'"),
        ("[model]\nnames = ['resnest51']\n", r"model.names: unknown model 'resnest51'"),
        ("[deploy\n", r"is not valid TOML"),
    ],
)
def test_bad_suite_files_name_the_key_and_value(tmp_path, body: str, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        load_suite(_write(tmp_path, body))


def test_unknown_suite_and_missing_file(tmp_path) -> None:
    bundled = "all-runtimes, cpu-runtime, gpu, scaling, sweep"
    with pytest.raises(BenchError, match=rf"unknown suite 'nope'; bundled suites: {bundled}, or"):
        load_suite("nope")
    with pytest.raises(BenchError, match="suite file not found"):
        load_suite(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize("name", ["all-runtimes", "cpu-runtime", "gpu"])
def test_int8_suites_hold_int8_to_the_projects_half_point_goal(name: str) -> None:
    suite, _ = load_suite(name)
    assert suite.deploy.int8_max_drop == 0.5
