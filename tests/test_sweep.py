"""Sweeps: the plan (grid, random sample, budget before training), point-by-point runs that
resume after a kill and survive a failing point, the Pareto fronts, and the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resnest_bench.harness import stages
from resnest_bench.harness.cli import main
from resnest_bench.harness.config import SweepSection, load_suite
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.report.pareto import pareto_front
from resnest_bench.harness.report.sweep import (
    SEED_BASIC_PARAMS,
    SEED_BOTTLENECK_PARAMS,
    latency_front,
    params_front,
)
from resnest_bench.harness.results.sweep import SweepPoint, SweepResult, read_record
from resnest_bench.harness.stages import RunRequest
from resnest_bench.harness.sweep import run as sweep
from resnest_bench.models import get_config
from resnest_bench.models.profile import model_summary

# Four tiny points (block x radix around resnest-tiny) on synthetic data; train only unless
# a test adds the deploy step.
TINY_SWEEP = """
name = "tiny-sweep"
device = "cpu"
seed = 0
steps = ["train"]

[model]
names = ["resnest-tiny"]

[sweep]
block = ["basic", "bottleneck"]
radix = [1, 2]

[data]
dataset = "synthetic"
train_subset = 64
test_subset = 32
small_subset = 16

[train]
epochs = 1
batch_size = 32
lr = 0.05
milestones = []

[deploy]
runtimes = ["ort-cpu"]  # fp32, int8 and .ort targets; PyTorch's is the pipeline tests' job
throughput_batches = [4]
calibration_images = 32
timed_images = 8
int8_max_drop = 100.0
timing = { warmup = 1, min_iters = 3, min_seconds = 0.0 }
"""


def _request(tmp_path: Path, text: str = TINY_SWEEP, resume: str | None = None) -> RunRequest:
    path = tmp_path / "tiny-sweep.toml"
    path.write_text(text)
    suite, _ = load_suite(str(path))
    return RunRequest(
        suite=suite,
        suite_path=path,
        quick=False,
        reports_root=tmp_path / "reports",
        data_root=tmp_path / "data",
        resume=resume,
        argv=["resnest-bench", "sweep", str(path)],
    )


class CountingTrain:
    """A sweep point's train(), counting the points trained; raises `fail` on call `fail_at`."""

    def __init__(self, fail_at: int | None = None, fail: BaseException | None = None) -> None:
        self.calls: list[str] = []
        self.fail_at, self.fail = fail_at, fail

    def __call__(self, model, *args, **kwargs):
        self.calls.append(model.config.name)
        if len(self.calls) == self.fail_at:
            raise self.fail
        return TRAIN(model, *args, **kwargs)


TRAIN = stages.train


# ---------------------------------------------------------------- Pareto front (pure)


def test_pareto_front_on_known_inputs() -> None:
    items = [
        ("a", 1.0, 0.5),
        ("b", 2.0, 0.7),
        ("c", 2.0, 0.6),  # same cost as b, lower value: dominated
        ("d", 3.0, 0.7),  # same value as b, higher cost: dominated
        ("e", 4.0, 0.9),
        ("f", 0.5, 0.2),
        ("g", 4.0, 0.9),  # e's exact twin: neither dominates, both kept
        ("h", 5.0, 0.85),  # dearer and worse than e
    ]
    front = pareto_front(items, cost=lambda i: i[1], value=lambda i: i[2])
    assert [i[0] for i in front] == ["f", "a", "b", "e", "g"]
    assert pareto_front([], cost=float, value=float) == []
    flat = [("x", 3.0, 0.5), ("y", 1.0, 0.5), ("z", 2.0, 0.5)]
    assert pareto_front(flat, cost=lambda i: i[1], value=lambda i: i[2]) == [("y", 1.0, 0.5)]


def _dominated(item, others, cost, value) -> bool:
    return any(
        cost(o) <= cost(item)
        and value(o) >= value(item)
        and (cost(o), value(o)) != (cost(item), value(item))
        for o in others
    )


# ---------------------------------------------------------------- the plan


def test_grid_budget_and_unbuildable_points_are_decided_before_training() -> None:
    base = get_config("resnest-mobile-s")
    section = SweepSection(
        block=["basic"], radix=[2], cardinality=[1, 3], width=[0.5, 2.0], max_params=5_000_000
    )
    size, points = sweep.plan(section, base, seed=0)
    assert size == 4 and len(points) == 4
    by_id = {p.id: p for p in points}
    ok = by_id["p01-basic-r2-c1-w0.5-d1.1.1.1-cifar"]
    assert ok.excluded is None and ok.params == model_summary_params(ok.config)
    over = by_id["p02-basic-r2-c1-w2-d1.1.1.1-cifar"]  # 4x the parameters of mobile-s
    assert over.excluded[0] == "over-budget" and "> 5,000,000" in over.excluded[1]
    assert over.params > 5_000_000 and over.config.base_planes == 64
    for point in (by_id["p03-basic-r2-c3-w0.5-d1.1.1.1-cifar"], points[3]):
        status, reason = point.excluded
        assert status == "failed" and reason.startswith("not buildable:")
        assert "cannot form radix 2 x cardinality 3 groups" in reason


def model_summary_params(config) -> int:
    import torch

    from resnest_bench.models.profile import count_params
    from resnest_bench.models.resnest import ResNeSt

    with torch.device("meta"):
        return count_params(ResNeSt(config))


def test_random_sample_is_seeded_and_within_budget() -> None:
    base = get_config("resnest-mobile-s")
    section = SweepSection(
        block=["basic", "bottleneck"],
        radix=[0, 1, 2],
        width=[0.25, 0.5, 1.0, 1.5],
        samples=5,
        max_params=2_000_000,
    )
    size, first = sweep.plan(section, base, seed=7)
    _, again = sweep.plan(section, base, seed=7)
    _, other = sweep.plan(section, base, seed=8)
    assert size == 24 and len(first) == 5
    assert [p.id for p in first] == [p.id for p in again]
    assert [p.id for p in first] != [p.id for p in other]
    assert all(p.excluded is None and p.params <= 2_000_000 for p in first)
    assert [p.id[:3] for p in first] == ["p01", "p02", "p03", "p04", "p05"]


def test_sweep_axes_are_validated(tmp_path: Path) -> None:
    bad = TINY_SWEEP.replace("radix = [1, 2]", "radix = [2, 2]")
    with pytest.raises(BenchError, match=r"sweep.radix: values must be distinct"):
        _request(tmp_path, bad)
    bad = TINY_SWEEP.replace("radix = [1, 2]", "layers = [[1, 0, 1, 1]]")
    with pytest.raises(BenchError, match=r"sweep.layers: every stage needs at least one block"):
        _request(tmp_path, bad)


def test_bundled_sweep_suite_and_its_quick_form_load() -> None:
    full, _ = load_suite("sweep")
    quick, _ = load_suite("sweep", quick=True)
    assert full.sweep is not None and full.model.names == ("resnest-mobile-s",)
    assert len(full.sweep.radix) * len(full.sweep.cardinality) * len(full.sweep.block) > 4
    assert quick.train.epochs <= 2 and quick.data.train_subset <= 512
    size, points = sweep.plan(quick.sweep, get_config("resnest-mobile-s"), seed=0)
    assert size == 4 and all(p.excluded is None and p.params < 200_000 for p in points)


# ---------------------------------------------------------------- running sweeps


@pytest.fixture(scope="module")
def deployed_sweep(tmp_path_factory) -> Path:
    """A real 4-point sweep through the CLI: each point trained and deployed."""
    root = tmp_path_factory.mktemp("sweep")
    suite = root / "tiny-sweep.toml"
    suite.write_text(TINY_SWEEP.replace('steps = ["train"]', 'steps = ["train", "deploy"]'))
    argv = ["--quiet", "sweep", str(suite), "--reports", str(root / "reports")]
    assert main([*argv, "--data-dir", str(root / "data")]) == 0
    (final,) = [p for p in (root / "reports").iterdir() if p.name != "work"]
    return final


@pytest.mark.slow
def test_four_point_sweep_completes_with_report(deployed_sweep: Path) -> None:
    assert {p.name for p in deployed_sweep.iterdir()} == {"sweep.json", "report.md", "pareto.png"}
    result = read_record(SweepResult, deployed_sweep / "sweep.json")
    assert len(result.points) == 4 and all(p.status == "ok" for p in result.points)
    assert {(p.spec.block, p.spec.radix) for p in result.points} == {
        ("basic", 1),
        ("basic", 2),
        ("bottleneck", 1),
        ("bottleneck", 2),
    }
    assert result.synthetic
    for point in result.points:
        assert point.model["radix"] == point.spec.radix and point.params and point.macs
        assert point.training.model.params == point.params
        assert point.training.model.macs == point.macs
        assert point.deployment.artifacts.int8.size_bytes > 0
        targets = {t.target for t in point.deployment.ok_targets()}
        assert targets >= {"ort-cpu:fp32", "ort-cpu:int8"}
    # each point's files stay in the work folder, one directory per point
    work = deployed_sweep.parent / "work" / result.sweep_id / "points"
    assert sorted(p.name for p in work.iterdir()) == sorted(p.id for p in result.points)
    report = (deployed_sweep / "report.md").read_text()
    for text in ("SYNTHETIC", "## Pareto fronts", "TPSNet", "seed basic R-50", "int8 MiB"):
        assert text in report
    assert "ort-cpu:fp32 ms" in report and "ort-cpu:int8 ms" in report
    assert all(f"| {p.id[:3]} |" in report for p in result.points)


@pytest.mark.slow
def test_report_command_re_renders_a_sweep(deployed_sweep: Path, capsys) -> None:
    (deployed_sweep / "report.md").write_text("stale")
    assert main(["report", str(deployed_sweep)]) == 0
    assert "## Pareto fronts" in (deployed_sweep / "report.md").read_text()
    assert str(deployed_sweep / "report.md") in capsys.readouterr().out


def test_fronts_of_a_real_sweep_hold_exactly_the_undominated_points(deployed_sweep: Path) -> None:
    points = read_record(SweepResult, deployed_sweep / "sweep.json").points
    front = params_front(points)
    cost, value = (lambda p: p.params), (lambda p: p.top1)
    for point in points:
        assert (point in front) == (not _dominated(point, points, cost, value))
    fastest = latency_front(points)
    assert fastest and all(f.target.latency_ms.median == f.latency_ms for f in fastest)
    # the fastest target of each point: no other measured target of it is faster
    for f in fastest:
        others = [t.latency_ms.median for t in f.point.deployment.ok_targets() if t.latency_ms]
        assert f.latency_ms == min(others)


def test_resume_after_a_kill_skips_finished_points(tmp_path: Path, monkeypatch) -> None:
    killed = CountingTrain(fail_at=3, fail=KeyboardInterrupt())
    monkeypatch.setattr(stages, "train", killed)
    request = _request(tmp_path)
    with pytest.raises(KeyboardInterrupt) as stopped:
        sweep.run_sweep(request)
    (work,) = (tmp_path / "reports" / "work").iterdir()
    said = str(stopped.value)  # the CLI's one line, exit 130 (SIGTERM: 143)
    assert said.startswith(f"stopped by SIGINT; sweep {work.name}'s finished points are kept in ")
    assert said.endswith(f" --resume {work.name}")
    finished = sorted(p.parent.name for p in work.glob("points/*/point.json"))
    assert len(killed.calls) == 3 and finished == sorted(killed.calls[:2])
    assert not [p for p in (tmp_path / "reports").iterdir() if p.name != "work"]
    before = {name: (work / "points" / name / "point.json").read_text() for name in finished}

    resumed = CountingTrain()
    monkeypatch.setattr(stages, "train", resumed)
    final, result = sweep.run_sweep(_request(tmp_path, resume=work.name))
    assert resumed.calls == [*killed.calls[2:], result.points[3].id]  # points 3 and 4 only
    assert final.name == work.name and [p.status for p in result.points] == ["ok"] * 4
    for name, text in before.items():  # points 1-2 come from their records, untouched
        assert (work / "points" / name / "point.json").read_text() == text
        assert next(p for p in result.points if p.id == name) == SweepPoint.model_validate_json(
            text
        )


def test_resume_refuses_other_settings_and_unknown_ids(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(stages, "train", CountingTrain(fail_at=1, fail=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(_request(tmp_path))
    (work,) = (tmp_path / "reports" / "work").iterdir()
    other = TINY_SWEEP.replace("epochs = 1", "epochs = 2")
    with pytest.raises(BenchError, match="its train settings differ"):
        sweep.run_sweep(_request(tmp_path, other, resume=work.name))
    with pytest.raises(BenchError, match="nothing to resume"):
        sweep.run_sweep(_request(tmp_path, resume="20991231-000000-nope"))


def test_a_failing_point_is_recorded_and_the_others_complete(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    text = TINY_SWEEP.replace("radix = [1, 2]", "radix = [1, 2]\nmax_params = 140000")
    suite = tmp_path / "tiny-sweep.toml"
    suite.write_text(text)
    failing = CountingTrain(fail_at=2, fail=RuntimeError("injected: out of luck\nsecond line"))
    monkeypatch.setattr(stages, "train", failing)
    argv = ["--quiet", "sweep", str(suite), "--reports", str(tmp_path / "reports")]
    assert main([*argv, "--data-dir", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    (final,) = [p for p in (tmp_path / "reports").iterdir() if p.name != "work"]
    result = read_record(SweepResult, final / "sweep.json")
    statuses = {p.id: (p.status, p.reason) for p in result.points}
    failed = failing.calls[1]
    assert statuses[failed] == ("failed", "train: RuntimeError: injected: out of luck")
    assert f"1 of 4 points failed ({failed})" in err
    over = [p for p in result.points if p.status == "over-budget"]
    assert len(over) == 1 and over[0].params > 140_000 and over[0].training is None
    assert over[0].id not in failing.calls  # the budget is applied before any training
    assert sum(p.status == "ok" for p in result.points) == 2
    report = (final / "report.md").read_text()
    assert "failed: train: RuntimeError: injected: out of luck" in report
    assert "over-budget: over budget:" in report


def test_run_and_sweep_commands_refuse_the_other_kind_of_suite(tmp_path: Path, capsys) -> None:
    common = ["--reports", str(tmp_path / "r"), "--data-dir", str(tmp_path / "d")]
    assert main(["run", "sweep", "--quick", *common]) == 2
    assert "is a sweep suite: run `resnest-bench sweep sweep`" in capsys.readouterr().err
    assert main(["sweep", "cpu-runtime", "--quick", "--dataset", "synthetic", *common]) == 2
    assert "has no [sweep] table" in capsys.readouterr().err


# ---------------------------------------------------------------- the report


def test_reference_parameter_counts_are_the_seed_networks_at_ten_classes() -> None:
    assert model_summary("resnest50d-basic", num_classes=10)["params"] == SEED_BASIC_PARAMS
    assert model_summary("resnest50d", num_classes=10)["params"] == SEED_BOTTLENECK_PARAMS


def test_sweep_report_renders_without_torch(deployed_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    out.mkdir()
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from resnest_bench.harness.results.sweep import SweepResult, read_record\n"
        "from resnest_bench.harness.report.sweep import write_sweep_report\n"
        f"result = read_record(SweepResult, {str(deployed_sweep / 'sweep.json')!r})\n"
        f"print(write_sweep_report(Path({str(out)!r}), result))\n"
        "bad = {'torch', 'onnxruntime'} & set(sys.modules); assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (out / "report.md").read_text() == (deployed_sweep / "report.md").read_text()
    assert (out / "pareto.png").stat().st_size > 10_000
    json.loads((deployed_sweep / "sweep.json").read_text())  # plain JSON for other tools
