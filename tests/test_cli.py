"""The CLI: thin commands, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resnest_bench.harness.cli import build_parser, main
from resnest_bench.harness.flags import overrides_from
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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["infer", "--checkpoint", "{tmp}/missing.pt"], "weights file not found"),
        (["infer", "--checkpoint", "{tmp}/corrupt.pt"], "cannot read weights file"),
        (
            ["infer", "--checkpoint", "{tmp}/corrupt.pt", "--runtimes", "tflite"],
            "unknown runtime 'tflite'",
        ),
        (["transfer", "--model", "resnest-tiny"], "transfer needs --checkpoint"),
        (
            ["train", "--model", "resnest-tiny", "--epochs", "0"],
            "train.epochs: Input should be greater than or equal to 1",
        ),
        (["train", "--model", "resnest51"], "unknown model 'resnest51'"),
        (["train", "--model", "resnest-tiny", "--device", "cuda"], "needs a CUDA GPU"),
        (["run", "nope"], "unknown suite 'nope'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, message):
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 torn")
    reports = tmp_path / "reports"
    args = [a.format(tmp=tmp_path) for a in argv]
    common = ["--reports", str(reports), "--data-dir", str(tmp_path / "data"), "--no-download"]
    if args[0] != "run":
        common += ["--dataset", "synthetic"]
    assert main([*args, *common]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("resnest-bench: error: ")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    assert not reports.exists() or not any(reports.iterdir())


HEAVY = "bad = {'torch', 'onnxruntime'} & set(sys.modules); assert not bad, bad"


def test_reading_commands_import_neither_torch_nor_onnxruntime() -> None:
    """--help, compare and report only read results: they must start fast on any machine."""
    code = (
        "import sys, resnest_bench.harness.report.compare, resnest_bench.harness.cli, "
        "resnest_bench.harness.report.run, resnest_bench.harness.config, resnest_bench.models; "
        + HEAVY
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_imports_neither_torch_nor_onnxruntime() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from resnest_bench.harness.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    main(['--help'])\n"
        "assert 'resnest-bench' in out.getvalue()\n" + HEAVY
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "resnest_bench.harness.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "compare" in done.stdout and "report" in done.stdout


def test_compare_and_report_commands_import_neither(tmp_path) -> None:
    """The commands themselves, run on a result file, stay torch-free too."""
    from tests.test_results import RUN, make_result

    result = tmp_path / "result.json"
    result.write_text(json.dumps(make_result(training={"runs": [RUN], "transfer": None})))
    code = (
        "import sys\n"
        "from resnest_bench.harness.cli import main\n"
        f"assert main(['report', {str(result)!r}]) == 0\n"
        f"assert main(['compare', {str(result)!r}, '--reports', {str(tmp_path)!r}]) == 0\n" + HEAVY
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
    assert "Table 2" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["run", "gpu", "--target", "0.5", "--dataset", "synthetic", "--seed", "3"],
            {"seed": 3, "data": {"dataset": "synthetic"}, "train": {"target_accuracy": 0.5}},
        ),
        (
            ["transfer", "--target", "0.4", "--dataset", "cifar100", "--amp"],
            {"transfer": {"target_accuracy": 0.4, "precision": "fp16", "dataset": "cifar100"}},
        ),
        (
            ["infer", "--runtimes", "ort-cpu", "--test-subset", "8", "--device", "cpu"],
            {"device": "cpu", "data": {"test_subset": 8}, "deploy": {"runtimes": ["ort-cpu"]}},
        ),
    ],
)
def test_flags_become_suite_overrides_under_the_suite_names(argv, expected) -> None:
    """One name per knob: each flag lands on the suite key that the suite file uses."""
    assert overrides_from(build_parser().parse_args(argv)) == expected


@pytest.mark.parametrize(("flag", "silenced"), [([], True), (["-v"], False)])
def test_library_import_chatter_shows_only_with_verbose(flag, silenced) -> None:
    """torchao lists GPU kernels it could not load whenever a converter imports it: noise on a
    CPU machine, kept for -v."""
    code = (
        "import logging, sys\n"
        "from resnest_bench.harness.cli import main\n"
        f"main(['models', '--json', *{flag!r}])\n"
        "logging.getLogger('torchao').warning('Failed to load kernels')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ("Failed to load kernels" in done.stderr) is not silenced


def test_a_container_run_prints_the_hosts_path(tmp_path, monkeypatch, capsys):
    """Compose mounts ./reports at /reports and passes the host's folder: what the harness
    prints must be a path the user can open on the host."""
    from resnest_bench.harness.console import published

    inside = tmp_path / "reports"
    (inside / "run-1").mkdir(parents=True)
    monkeypatch.setenv("RESNEST_BENCH_REPORTS", str(inside))
    monkeypatch.setenv("RESNEST_BENCH_HOST_REPORTS", "/home/ana/resnest-bench/reports")
    published(inside / "run-1", "report.md")
    out, err = capsys.readouterr()
    assert out == "/home/ana/resnest-bench/reports/run-1\n"
    assert err.strip().endswith(
        "report: /home/ana/resnest-bench/reports/run-1/report.md "
        f"(in the container: {inside}/run-1/report.md)"
    )
    monkeypatch.delenv("RESNEST_BENCH_HOST_REPORTS")  # not in a container: the path as is
    published(inside / "run-1", "report.md")
    assert capsys.readouterr().out == f"{inside}/run-1\n"
