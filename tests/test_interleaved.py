"""Side-by-side measurement: drift cancels in per-round ratios, a flagged row is seen, and a
target whose process dies leaves every other target's figures and the report intact."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.clock import sample
from resnest_bench.harness.config import DeploySection, TimingSection
from resnest_bench.harness.data import load_dataset
from resnest_bench.harness.export import build_artifacts
from resnest_bench.harness.export import onnx as build_onnx
from resnest_bench.harness.host import load as hostload
from resnest_bench.harness.measure import REFERENCE, host_check, round_speedups, session_speedups
from resnest_bench.harness.measure.interleaved import run_session
from resnest_bench.harness.report.deployment import deployment_section
from resnest_bench.harness.results.deployment import Deployment, Target
from tests.measuring import measure

TIMING = TimingSection(warmup=0, min_iters=20, min_seconds=0.0)


class FakeMachine:
    """A clock that only moves when a fake target computes; the machine gets 8x slower over
    the run (a neighbour's load growing), so timing targets one after another would be wrong."""

    def __init__(self, total_calls: int) -> None:
        self.now = 0.0
        self.calls = 0
        self.total = total_calls

    def clock(self) -> float:
        return self.now

    def compute(self, cost: float) -> None:
        self.calls += 1
        self.now += cost * (1.0 + 7.0 * self.calls / self.total)


class FakeTarget:
    """A handle answering like measure.target.Worker, its timing through the real loop."""

    def __init__(self, machine: FakeMachine, cost: float) -> None:
        self.machine, self.cost = machine, cost

    def call(self, op: str, **kwargs):
        run = lambda: self.machine.compute(self.cost)  # noqa: E731
        if op == "load":
            return {"load_s": 0.1, "first_inference_s": 0.01, "threads": 1}
        if op == "round":
            return sample(run, kwargs["timing"], clock=self.machine.clock)
        if op == "throughput":
            return sample(run, kwargs["timing"], clock=self.machine.clock)
        if op == "accuracy":
            return [self.cost] * kwargs["timed"], np.zeros((kwargs["timed"], 2), np.float32)
        return 0


def _snapshot():
    return hostload.HostSnapshot(
        wall_s=0.0, load_1m=0.0, busy_s=0.0, steal_s=0.0, total_s=1.0, own_s=0.0, cpu_mhz=None
    )


def test_fake_clock_drift_cancels_through_the_scheduler():
    costs = {REFERENCE: 40.0, "ort-cpu:fp32": 10.0, "ort-cpu:int8": 5.0}
    rounds = 8
    section = DeploySection(rounds=rounds, timing=TIMING, throughput_batches=(4,))
    machine = FakeMachine(total_calls=len(costs) * (TIMING.min_iters + 1) * 2)
    handles = {name: FakeTarget(machine, cost) for name, cost in costs.items()}
    session = run_session(handles, section, timed_images=3, snapshot=_snapshot)
    ratios = round_speedups({n: o.rounds for n, o in session.outcomes.items()})
    assert [len(o.rounds) for o in session.outcomes.values()] == [rounds] * 3
    assert ratios[REFERENCE].median == 1.0
    assert ratios["ort-cpu:fp32"].median == pytest.approx(4.0, rel=0.1)
    assert ratios["ort-cpu:int8"].median == pytest.approx(8.0, rel=0.1)
    assert ratios["ort-cpu:int8"].rounds == rounds
    # throughput is timed in the same interleaved rounds: its ratios survive the drift too
    batch4 = {name: o.throughput[4].median for name, o in session.outcomes.items()}
    assert batch4[REFERENCE] / batch4["ort-cpu:fp32"] == pytest.approx(4.0, rel=0.15)
    assert batch4[REFERENCE] / batch4["ort-cpu:int8"] == pytest.approx(8.0, rel=0.15)

    # the same drift, each target timed whole one after another: the ratio is far off
    machine = FakeMachine(total_calls=len(costs) * TIMING.min_iters)
    pooled = {
        name: np.median(sample(lambda c=cost: machine.compute(c), TIMING, clock=machine.clock))
        for name, cost in costs.items()
    }
    assert pooled[REFERENCE] / pooled["ort-cpu:int8"] < 0.6 * 8.0


class Budget:
    """A 1,000-byte memory budget; each target alive holds 300 of it (peak RSS 300)."""

    def __init__(self) -> None:
        self.alive: set[str] = set()
        self.peak = 0

    def room(self) -> int:
        return 1000 - 300 * len(self.alive)


class BudgetedTarget(FakeTarget):
    def __init__(self, machine: FakeMachine, cost: float, budget: Budget, name: str) -> None:
        super().__init__(machine, cost)
        self.budget, self.name = budget, name

    def call(self, op: str, **kwargs):
        if op == "load":
            self.budget.alive.add(self.name)
            self.budget.peak = max(self.budget.peak, len(self.budget.alive))
        if op == "rss":
            return 300
        return super().call(op, **kwargs)

    def close(self) -> None:
        self.budget.alive.discard(self.name)


def test_targets_that_do_not_fit_in_memory_together_are_timed_in_groups():
    """The CPU image's 4 GiB cannot hold every runtime's process at once: targets load while
    the budget has room for one more, each group is timed beside the reference, and every
    ratio still holds under the drift."""
    costs = {REFERENCE: 40.0, "a": 10.0, "b": 5.0, "c": 20.0, "d": 8.0}
    budget = Budget()
    rounds = 6
    section = DeploySection(rounds=rounds, timing=TIMING, throughput_batches=())
    machine = FakeMachine(total_calls=2 * len(costs) * (TIMING.min_iters + 1) * 2)
    handles = {n: BudgetedTarget(machine, c, budget, n) for n, c in costs.items()}
    session = run_session(handles, section, timed_images=3, snapshot=_snapshot, room=budget.room)
    # 1,000 bytes hold 3 targets of 300 (one more needs 1.25 x 300 of room): two groups
    assert [set(group) for group in session.group_rounds] == [
        {REFERENCE, "a", "b"},
        {REFERENCE, "c", "d"},
    ]
    assert budget.peak == 3
    ratios = session_speedups(session)
    assert ratios[REFERENCE].median == 1.0
    for name in ("a", "b", "c", "d"):
        assert ratios[name].median == pytest.approx(40.0 / costs[name], rel=0.1), name
    assert all(len(o.rounds) == rounds and o.logits is not None for o in session.outcomes.values())


def _row(**figures) -> Target:
    return Target(target="t", runtime="ort-cpu", artifact="onnx_fp32", status="ok", **figures)


def test_inconsistent_row_is_flagged_and_not_trustworthy():
    """The issue's row: p50 2,408 ms, 246 ms per image over the test set, ~97 ms batched."""
    flag = hostload.row_disagreement(2408.0, 246.0)
    assert flag is not None and "2408.0 ms vs 246.0 ms" in flag
    assert hostload.row_disagreement(50.0, 52.0) is None
    machine = FakeMachine(total_calls=1000)
    section = DeploySection(rounds=2, timing=TIMING, throughput_batches=(4,))
    handles = {REFERENCE: FakeTarget(machine, 1.0)}
    session = run_session(handles, section, timed_images=2, snapshot=_snapshot)
    rows = [_row(flag=flag), _row()]
    check = host_check(session, rows)
    assert check.busy is False and check.trustworthy is False
    assert check.reasons == [f"t: figures disagree: {flag}"]
    assert host_check(session, [_row()]).trustworthy is True


class DiesMidRun:
    """Kills one target's process (SIGKILL) once the first timing round is over."""

    def __init__(self, live: dict, victim: str) -> None:
        self.live, self.victim = live, victim

    def __call__(self, description: str, done: int, total: int) -> None:
        if description.endswith("round 2/3"):
            os.kill(self.live[self.victim].process.pid, signal.SIGKILL)


@pytest.fixture(scope="module", autouse=True)
def torchscript_only():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_onnx, "AUTO_ORDER", ("torchscript",))
        yield


def test_a_target_that_dies_mid_run_costs_only_itself(tmp_path, monkeypatch):
    from resnest_bench.harness.measure import target as target_module

    live: dict[str, target_module.TargetProcess] = {}
    real_init = target_module.TargetProcess.__init__

    def remember(self, job):
        real_init(self, job)
        live[job.target] = self

    monkeypatch.setattr(target_module.TargetProcess, "__init__", remember)
    data = load_dataset("synthetic", root=tmp_path, train_subset=32, test_subset=16, image_size=16)
    torch.manual_seed(0)
    model = models.create_model("resnest-tiny").eval()
    section = DeploySection(
        runtimes=("torch-eager", "ort-cpu"),
        timing=TimingSection(warmup=1, min_iters=3, min_seconds=0.0),
        throughput_batches=(2,),
        timed_images=4,
        calibration_images=16,
        int8_max_drop=100.0,
        threads=1,
        rounds=3,
    )
    artifacts = build_artifacts(model, data, tmp_path / "a", section)
    targets, demo, host = measure(
        tmp_path / "a",
        artifacts,
        data,
        section,
        small_subset=4,
        step=DiesMidRun(live, "ort-cpu:int8"),
    )
    status = {t.target: t.status for t in targets}
    assert status == {
        "torch-eager:fp32": "ok",
        "ort-cpu:fp32": "ok",
        "ort-cpu:int8": "failed",
        "ort-cpu:int8-ort-format": "ok",
    }
    dead = next(t for t in targets if t.status == "failed")
    assert "died during round" in dead.reason and "\n" not in dead.reason
    fp32 = next(t for t in targets if t.target == "ort-cpu:fp32")
    assert fp32.speedup.rounds == 3 and fp32.latency_ms.n >= 3 and fp32.top1_full is not None
    assert "ort-cpu:int8" not in demo.probs and len(host.rounds) == 3
    text = deployment_section(
        Deployment(
            environment={"usable_cpus": 1, "threads": 1, "cgroup": {}},
            artifacts=artifacts,
            targets=targets,
            demo=demo,
            host=host,
            rounds=3,
        )
    )
    assert "ort-cpu:int8 | failed: measurement process died during round" in text
