"""The report's first screen: trust verdict, what to ship (never a flagged figure), one summary
table; SYNTHETIC named everywhere; compare marks synthetic runs and names each run."""

from __future__ import annotations

from pathlib import Path

from resnest_bench.harness.report.compare import render_comparison
from resnest_bench.harness.report.run import render, write_report
from resnest_bench.harness.results import RunResult
from resnest_bench.harness.results.stats import Stats

ENVIRONMENT = {"python": {"version": "3.11.9"}, "cpu": {}, "versions": {}}
QUIET = {
    "seconds": 30.0,
    "load_1m_before": 0.1,
    "load_1m_after": 0.2,
    "other_cores": 0.05,
    "steal_fraction": 0.0,
    "cpu_mhz_min": None,
    "cpu_mhz_max": None,
    "busy": False,
    "reason": "quiet: other processes used 0.05 cores",
}
BUSY = {**QUIET, "other_cores": 1.9, "busy": True, "reason": "other processes used 1.90 cores"}


def _target(name: str, speedup: float, top1: float, ms: float, flag: str | None = None) -> dict:
    runtime, label = name.split(":")
    kind = {"fp32": "onnx_fp32", "int8": "onnx_int8"}[label]
    if runtime == "torch-eager":
        kind = "state_dict"
    latency = Stats.from_samples([ms, ms * 1.1, ms * 0.9]).model_dump()
    return {
        "target": name,
        "runtime": runtime,
        "artifact": kind,
        "status": "ok",
        "threads": 2,
        "speedup": {"median": speedup, "low": speedup * 0.9, "high": speedup * 1.1, "rounds": 5},
        "flag": flag,
        "latency_ms": latency,
        "top1_full": top1,
        "images_full": 500,
        "peak_rss_bytes": 300 * 2**20,
    }


def _result(host: dict, *, flagged: bool, synthetic: bool = True) -> RunResult:
    targets = [
        _target("torch-eager:fp32", 1.0, 80.0, 40.0),
        _target("ort-cpu:fp32", 4.0, 80.0, 10.0),
        _target(
            "ort-cpu:int8", 8.0, 79.8, 5.0, flag="batch-1 p50 9 ms vs 2 ms" if flagged else None
        ),
        {
            "target": "ort-cuda:fp32",
            "runtime": "ort-cuda",
            "artifact": "onnx_fp32",
            "status": "failed",
            "reason": "measurement process died during round (exit code -9)",
        },
    ]
    reasons = ["ort-cpu:int8: figures disagree: batch-1 p50 9 ms vs 2 ms"] if flagged else []
    if host["busy"]:
        reasons.insert(0, f"host busy while timing: {host['reason']}")
    deployment = {
        "config": {"int8_max_drop": 0.5},
        "environment": {"usable_cpus": 2, "threads": 2, "cgroup": {}},
        "artifacts": {
            "files": {"state_dict": "model.pt", "onnx_fp32": "m.onnx", "onnx_int8": "m.int8.onnx"},
            "sizes_bytes": {
                "state_dict": 10 * 2**20,
                "onnx_fp32": 10 * 2**20,
                "onnx_int8": 3 * 2**20,
            },
        },
        "targets": targets,
        "demo": {"index": 0, "label": "cat", "classes": ["cat", "dog"], "probs": {}},
        "rounds": 5,
        "host": {
            "overall": host,
            "rounds": [host] * 5,
            "busy": host["busy"],
            "trustworthy": not reasons,
            "reasons": reasons,
        },
    }
    return RunResult.model_validate(
        {
            "kind": "deploy",
            "run_id": "20261123-000000-cpu-runtime",
            "created": "2026-11-23T00:00:00+00:00",
            "command": ["resnest-bench", "run", "cpu-runtime", "--quick"],
            "seed": 0,
            "environment": ENVIRONMENT,
            "config": {
                "suite": "cpu-runtime",
                "settings": {
                    "model": {"names": ["resnest50d"], "stem": "imagenet"},
                    "data": {"dataset": "synthetic" if synthetic else "cifar10"},
                },
            },
            "deployment": deployment,
        }
    )


def _first_screen(text: str) -> str:
    return text.split("## Run")[0]


def test_quiet_run_ships_the_fastest_within_the_limit():
    text = render(_result(QUIET, flagged=False), [])
    first = _first_screen(text)
    assert first.startswith("# resnest-bench deploy: cpu-runtime (SYNTHETIC data)")
    assert "**Trust: figures trustworthy**" in first
    assert "Ship: **ort-cpu:int8**, 8.00x" in first and "-0.20 pts vs fp32" in first
    row = "| ort-cpu:int8 | 8.00x (7.20-8.80, 5 rounds) | 2.00x | 79.80% | -0.20 pts | 3.0 | 300.0"
    assert row in first
    assert "2.00x the fastest fp32 runtime's (ort-cpu:fp32)" in first
    assert "Reference: PyTorch eager fp32 = `model(x)` under `torch.inference_mode()`" in first
    assert "SHIP: fastest within 0.5 pts" in first
    assert "failed: measurement process died" in first
    assert "Abbreviations:" in first and "RSS = resident set size" in first
    assert "threads per runtime 2" in first and "resnest50d, imagenet stem" in first
    for section in ("## Summary", "## Deployment details", "Table 5"):
        line = next(line for line in text.splitlines() if line.startswith(section))
        assert "SYNTHETIC" in line, line


def test_flagged_row_is_never_the_headline_and_busy_host_is_said_first():
    text = render(_result(BUSY, flagged=True), [])
    first = _first_screen(text)
    trust = next(line for line in first.splitlines() if line.startswith("**Trust"))
    assert trust.startswith("**Trust: NOT trustworthy**")
    assert "host busy while timing" in trust and "ort-cpu:int8: figures disagree" in trust
    assert "Ship: **ort-cpu:fp32**" in first and "(host busy: treat as indicative)" in first
    assert "not comparable: batch-1 p50 9 ms vs 2 ms" in first
    assert "ort-cpu:int8 [FLAGGED]" in text


def test_plots_are_written_and_titled(tmp_path: Path):
    names = write_report(tmp_path, _result(QUIET, flagged=True))
    assert names == ["report.md", "latency.png", "tradeoff.png"]
    assert all((tmp_path / n).stat().st_size > 5000 for n in names[1:])


def test_compare_names_runs_and_marks_synthetic():
    text = render_comparison(
        [_result(QUIET, flagged=False), _result(QUIET, flagged=False, synthetic=False)], False
    )
    rows = [line for line in text.splitlines() if line.startswith("| ") and "ort-cpu:fp32" in line]
    assert len(rows) == 2
    assert "[SYNTHETIC]" in rows[0] and "[SYNTHETIC]" not in rows[1]
    assert all(row.rstrip(" |").endswith("20261123-000000-cpu-runtime") for row in rows)


def test_compare_records_the_torch_build_of_each_row():
    result = _result(QUIET, flagged=False, synthetic=False)
    versions = result.environment.versions.model_copy(update={"torch": "2.9.1+cu126"})
    environment = result.environment.model_copy(update={"versions": versions})
    text = render_comparison([result.model_copy(update={"environment": environment})], True)
    table = text.split("## Deployment", 1)[1].splitlines()
    assert "| machine | torch | target |" in next(line for line in table if "| machine" in line)
    row = next(line for line in table if "ort-cpu:fp32" in line)
    assert row.split(" | ")[1] == "2.9.1+cu126"
    seed = next(line for line in table if "[reference]" in line)
    assert seed.split(" | ")[1] == "not stated"


def test_report_command_takes_a_run_directory(tmp_path: Path, capsys):
    from resnest_bench.harness.cli import main
    from resnest_bench.harness.results import write_result

    write_result(tmp_path / "result.json", _result(QUIET, flagged=False))
    assert main(["report", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "report.md").read_text().startswith("# resnest-bench deploy")
    assert str(tmp_path / "tradeoff.png") in capsys.readouterr().out


def test_each_runtimes_fp32_is_held_against_ort_fp32_and_a_slower_one_says_why():
    """Measured in the same rounds; slower than 0.95x, the line says what the run shows: ops
    in reference kernels, or none, which leaves the delegate's own kernels."""
    from types import SimpleNamespace

    from resnest_bench.harness.report.provenance import _fp32_against_ort
    from resnest_bench.harness.results.deployment import DelegateCoverage, Speedup

    def timed(name: str, median: float) -> SimpleNamespace:
        return SimpleNamespace(
            target=name, speedup=Speedup(median=median, low=median, high=median, rounds=5)
        )

    deployment = SimpleNamespace(
        ok_targets=lambda: [
            timed("ort-cpu:fp32", 4.0),
            timed("litert:fp32", 4.4),
            timed("executorch:fp32", 2.7),
            timed("openvino:fp32", 3.0),
        ]
    )

    def record(fallback: dict[str, int] | None) -> SimpleNamespace:
        if fallback is None:
            return SimpleNamespace(coverage={})
        total = 452 + sum(fallback.values())
        cover = DelegateCoverage(
            delegate="XNNPACK", delegated_ops=452, total_ops=total, fallback=fallback
        )
        return SimpleNamespace(coverage={"executorch_fp32": cover, "litert_fp32": cover})

    faster = _fp32_against_ort(deployment, "litert", record({}))
    assert faster == "fp32 at 1.10x ONNX Runtime fp32's batch-1 speed (the same rounds)"
    delegated = _fp32_against_ort(deployment, "executorch", record({}))
    assert (
        delegated.startswith("fp32 at 0.68x")
        and "slower: not from fallbacks (every op runs in XNNPACK)" in delegated
    )
    fallen = _fp32_against_ort(deployment, "executorch", record({"avg_pool2d": 6}))
    assert fallen.endswith("slower: 6 ops run in reference kernels (avg_pool2d x6)")
    assert "slower: openvino's own CPU kernels against" in _fp32_against_ort(
        deployment, "openvino", record(None)
    )
    assert _fp32_against_ort(deployment, "tvm", record({})) is None  # not timed: no line


def test_a_failed_eager_reference_hands_the_ratios_to_the_next_target():
    """Issue 20.3: K80's deploy workers lost eager and, with it, every ratio; now the next
    target that ran is the reference and the first screen says so."""
    from resnest_bench.harness.measure import round_speedups

    ratios = round_speedups(
        {"ort-cpu:fp32": [[0.010], [0.010]], "ort-cpu:int8": [[0.005], [0.004]]}
    )
    assert ratios["ort-cpu:int8"].against == "ort-cpu:fp32"
    assert ratios["ort-cpu:int8"].median == 2.25 and ratios["ort-cpu:int8"].low == 2.0
    result = _result(QUIET, flagged=False)
    eager, fp32, int8, cuda = result.deployment.targets
    failed = eager.model_copy(
        update={"status": "failed", "reason": "round failed: cuDNN error", "speedup": None}
    )
    moved = [
        t.model_copy(update={"speedup": t.speedup.model_copy(update={"against": fp32.target})})
        for t in (fp32, int8)
    ]
    deployment = result.deployment.model_copy(update={"targets": [failed, *moved, cuda]})
    first = _first_screen(render(result.model_copy(update={"deployment": deployment}), []))
    assert "Ship: **ort-cpu:int8**, 8.00x ort-cpu:fp32 (eager failed)'s batch-1 speed" in first
    assert (
        "Reference: PyTorch eager fp32 failed (round failed: cuDNN error); speed-ups and "
        "accuracy changes are against ort-cpu:fp32 instead" in first
    )
    assert "-0.20 pts vs fp32" in first  # accuracy change against the new reference (80.0%)


def _rejected_int8(result: RunResult) -> RunResult:
    """The same run, its ORT int8 model rejected by the gate (0.83 pts lost, limit 0.5)."""
    int8 = {
        "path": "m.int8.onnx",
        "size_bytes": 3 * 2**20,
        "variant": "u8s8",
        "settings": {
            "quant_format": "qdq",
            "per_channel": True,
            "calibration": "minmax",
            "calibration_images": 512,
            "schemes": [],
            "scheme_reason": "test",
        },
        "fp32_top1": 98.33,
        "int8_top1": 97.5,
        "drop_pts": 0.83,
        "max_drop_pts": 0.5,
        "within_limit": False,
        "heldout_images": 360,
        "calibration_images": 512,
        "excluded_nodes": ["/stem/conv/Conv"],
        "attempts": [
            {
                "variant": "u8s8",
                "excluded_nodes": 0,
                "top1": 97.0,
                "drop_pts": 1.33,
                "accepted": False,
                "size_bytes": 3 * 2**20,
                "seconds": 12.4,
            },
            {
                "variant": "u8s8+1-most-sensitive-fp32",
                "excluded_nodes": 1,
                "kept_fp32": ["/stem/conv/Conv"],
                "top1": 97.5,
                "drop_pts": 0.83,
                "accepted": False,
                "size_bytes": 3 * 2**20 + 2**19,
                "seconds": 13.6,
            },
        ],
    }
    data = result.model_dump(mode="json")
    data["deployment"]["artifacts"]["int8"] = int8
    return RunResult.model_validate(data)


def test_rejected_int8_says_so_in_the_summary_row_and_the_outcome_line_first():
    """Even a row whose figures are flagged reads REJECTED: the gate decides the exit code."""
    first = _first_screen(render(_rejected_int8(_result(QUIET, flagged=True)), []))
    row = next(line for line in first.splitlines() if line.startswith("| ort-cpu:int8 |"))
    assert row.endswith(
        "| REJECTED: loses 0.83 pts (limit 0.5) on held-out images; the run exits 3 "
        "(--allow-int8-loss ships it) |"
    )
    headline = next(line for line in first.splitlines() if line.startswith("Ship:"))
    assert headline.startswith("Ship: **ort-cpu:fp32**, 4.00x")
    assert headline.endswith(
        "**Exit 3: int8 REJECTED: ort-cpu:int8 (best variant `u8s8` loses 0.83 pts); limit "
        "0.5 pts of fp32 top-1 on 360 held-out images** (--allow-int8-loss ships them)."
    )


def test_a_rejected_int8_is_never_shipped_even_when_its_test_top1_looks_fine():
    first = _first_screen(render(_rejected_int8(_result(QUIET, flagged=False)), []))
    assert "Ship: **ort-cpu:fp32**" in first and "SHIP: fastest" in first
    assert "Ship: **ort-cpu:int8**" not in first


def test_the_outcome_line_names_the_exit_code_of_a_clean_or_partly_failed_run():
    first = _first_screen(render(_result(QUIET, flagged=False), []))
    assert "(-0.20 pts vs fp32). **Exit 1**: failed: ort-cuda:fp32." in first


def test_every_int8_attempt_shows_its_fp32_layers_and_its_cost():
    text = render(_rejected_int8(_result(QUIET, flagged=False)), [])
    line = next(line for line in text.splitlines() if line.startswith("- int8 (ONNX Runtime"))
    assert line.endswith(
        "Tried, in order (only the chosen variant is timed, in its target's row): "
        "u8s8: top-1 97.00% (drop 1.33 pts, 0 nodes kept fp32, 3.0 MiB, built and scored in 12 s); "
        "u8s8+1-most-sensitive-fp32: top-1 97.50% (drop 0.83 pts, 1 nodes kept fp32: "
        "`/stem/conv/Conv`, 3.5 MiB, built and scored in 14 s)"
    )


def test_percentiles_are_shown_only_where_the_count_supports_them():
    from resnest_bench.harness.report.markdown import stats
    from resnest_bench.harness.results.stats import Stats

    two_epochs = Stats.from_samples([10.0, 12.0])
    assert stats(two_epochs, unit=" s") == "11 s (cv 12.9%, n=2)"
    forty = Stats.from_samples([float(i) for i in range(1, 41)])
    assert stats(forty) == "20.5 (p90 36.1, cv 57.0%, n=40)"  # sample std 11.69 / mean 20.5
    assert stats(Stats.from_samples([float(i) for i in range(1, 101)])).startswith(
        "50.5 (p90 90.1, p99 99.01, cv"
    )


def test_targets_timed_in_memory_groups_are_said():
    result = _result(QUIET, flagged=False)
    host = result.deployment.host.model_copy(
        update={
            "groups": [["torch-eager:fp32", "ort-cpu:fp32"], ["torch-eager:fp32", "ort-cpu:int8"]]
        }
    )
    text = render(
        result.model_copy(
            update={"deployment": result.deployment.model_copy(update={"host": host})}
        ),
        [],
    )
    assert (
        "- Memory: the targets did not fit in memory together, so they were timed in 2 groups, "
        "each beside the reference (ratios within a group): torch-eager:fp32, ort-cpu:fp32; "
        "torch-eager:fp32, ort-cpu:int8." in text
    )
    assert "- Memory:" not in render(_result(QUIET, flagged=False), [])
