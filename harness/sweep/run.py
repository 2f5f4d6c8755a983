"""Run a sweep: networks around one base config, each trained and deployed as a suite run is.

    sweep_result = run_sweep(RunRequest(suite=<a suite with a [sweep] table>, ...))

The points come from the suite's [sweep] axes (harness.config.SweepSection) applied to its one
model; the budget is checked on each built network (on the meta device: no memory, no compute)
before anything trains. Each point then goes through the pipeline's own stages, train() with
suite.train and run_deploy() with suite.deploy. Layout under the reports folder:

    <reports>/work/<sweep_id>/sweep-settings.json    the suite as planned; a resume must match
    <reports>/work/<sweep_id>/points/<point>/        train/ (checkpoints), artifacts/, point.json
    <reports>/<sweep_id>/                            sweep.json, report.md, plots (staged)

Points run one at a time, and each is recorded in its point.json as soon as it ends, so a
killed sweep resumes (`--resume SWEEP_ID`) at the first unfinished point, and that point from
its last epoch checkpoint. A point that fails is recorded with a one-line reason and the sweep
goes on; a resume tries failed points again and skips finished ones.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from resnest_bench.harness import console
from resnest_bench.harness.config import Suite, SweepSection
from resnest_bench.harness.data import Dataset
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.gpu.accel import select_device
from resnest_bench.harness.host.envinfo import fingerprint
from resnest_bench.harness.pipeline import resume_command
from resnest_bench.harness.report.sweep import write_sweep_report
from resnest_bench.harness.results.sweep import (
    SWEEP_NAME,
    PointSpec,
    SweepPoint,
    SweepResult,
    read_record,
    write_record,
)
from resnest_bench.harness.signals import as_stopped
from resnest_bench.harness.stages import RunRequest, load_data, run_config
from resnest_bench.harness.store.atomic import atomic_write_json, staged_dir
from resnest_bench.harness.store.readfile import read_json
from resnest_bench.harness.store.runs import claimed
from resnest_bench.harness.store.storage import no_empty_folders_left
from resnest_bench.harness.sweep.point import Candidate, failure_reason, run_in_turn
from resnest_bench.harness.sweep.ray_tasks import check_reachable, run_on_ray
from resnest_bench.models import ModelConfig, get_config
from resnest_bench.models.profile import count_macs, count_params
from resnest_bench.models.resnest import ResNeSt

SETTINGS_NAME = "sweep-settings.json"
POINT_NAME = "point.json"


def base_config(suite: Suite, dataset: Dataset) -> ModelConfig:
    """The suite's one model with its model.* overrides, sized for the data set."""
    names = suite.model.names
    if len(names) != 1:
        raise BenchError(f"a sweep derives its points from one model; model.names has {names}")
    section = suite.model
    return get_config(names[0]).with_overrides(
        stem=section.stem,
        radix=section.radix,
        cardinality=section.cardinality,
        num_classes=dataset.num_classes,
        input_size=dataset.image_size,
    )


def grid(section: SweepSection, base: ModelConfig) -> list[PointSpec]:
    """Every combination of the axes' values, in the order the file lists them."""
    axes: dict[str, tuple[Any, ...]] = {
        "block": section.block or (base.block,),
        "radix": section.radix or (base.radix,),
        "cardinality": section.cardinality or (base.cardinality,),
        "width": section.width or (1.0,),
        "layers": section.layers or (base.layers,),
        "stem": section.stem or (base.stem,),
    }
    combos = itertools.product(*axes.values())
    return [PointSpec(**dict(zip(axes, values, strict=True))) for values in combos]


def slug(spec: PointSpec) -> str:
    """A point's readable name: basic-r2-c1-w0.5-d1.1.1.1-cifar."""
    depths = ".".join(str(n) for n in spec.layers)
    return f"{spec.block}-r{spec.radix}-c{spec.cardinality}-w{spec.width:g}-d{depths}-{spec.stem}"


def derive(base: ModelConfig, spec: PointSpec, name: str) -> ModelConfig:
    """The base config moved to a point: width scales base_planes and stem_width."""
    return replace(
        base,
        name=name,
        block=spec.block,
        radix=spec.radix,
        cardinality=spec.cardinality,
        layers=tuple(spec.layers),
        stem=spec.stem,
        base_planes=max(1, round(base.base_planes * spec.width)),
        stem_width=max(1, round(base.stem_width * spec.width)),
    )


def _over_budget(params: int, macs: int, section: SweepSection) -> str | None:
    over = []
    if section.max_params is not None and params > section.max_params:
        over.append(f"{params:,} parameters > {section.max_params:,}")
    if section.max_macs is not None and macs > section.max_macs:
        over.append(f"{macs:,} MACs > {section.max_macs:,}")
    return "over budget: " + ", ".join(over) if over else None


def candidate(base: ModelConfig, spec: PointSpec, index: int, section: SweepSection) -> Candidate:
    """A point sized on the meta device (no memory, no compute) and checked against the budget."""
    config = derive(base, spec, f"p{index:02d}-{slug(spec)}")
    try:
        with torch.device("meta"):
            network = ResNeSt(config)
        params, macs = count_params(network), count_macs(network, config.input_size)
    except (ValueError, RuntimeError) as exc:  # ModelError is a ValueError
        return Candidate(spec, config, excluded=("failed", f"not buildable: {failure_reason(exc)}"))
    over = _over_budget(params, macs, section)
    return Candidate(spec, config, params, macs, ("over-budget", over) if over else None)


def plan(section: SweepSection, base: ModelConfig, seed: int) -> tuple[int, list[Candidate]]:
    """(grid size, candidates). A grid lists every point, those left out with their reason; a
    random sample (samples set) draws points in a seeded order until that many fit the budget."""
    specs = grid(section, base)
    if section.samples is None:
        return len(specs), [candidate(base, s, i, section) for i, s in enumerate(specs, 1)]
    drawn: list[Candidate] = []
    for spec in random.Random(seed).sample(specs, len(specs)):
        point = candidate(base, spec, len(drawn) + 1, section)
        if point.excluded is None:
            drawn.append(point)
        if len(drawn) == section.samples:
            break
    return len(specs), drawn


def _claim_work_dir(work: Path, suite: Suite, *, resume: bool) -> str:
    """Record the suite a new sweep runs, or check that a resumed one runs the same; returns
    the sweep's creation time."""
    path = work / SETTINGS_NAME
    settings = suite.model_dump(mode="json")
    if not resume:
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_json(path, {"created": created, "settings": settings})
        return created
    if not path.is_file():
        raise BenchError(f"nothing to resume: {path} does not exist")
    saved = read_json(path, "sweep settings")
    old = saved["settings"]
    keys = sorted(old.keys() | settings.keys())
    differ = [key for key in keys if old.get(key) != settings.get(key)]
    if differ:
        raise BenchError(
            f"cannot resume {work.name}: its {', '.join(differ)} settings differ from this "
            "suite's; give the same suite, --quick and flags as the first run"
        )
    return str(saved["created"])


def _check(request: RunRequest) -> SweepSection:
    suite = request.suite
    if suite.sweep is None:
        raise BenchError(f"suite {suite.name!r} has no [sweep] table: run it with `run`")
    if "train" not in suite.steps or "transfer" in suite.steps:
        raise BenchError(f"a sweep trains each point (steps: train, deploy), got {suite.steps}")
    if request.checkpoint is not None:
        raise BenchError("a sweep trains its own points; --checkpoint does not apply")
    if request.ray_address is not None:
        check_reachable(request.ray_address)
    return suite.sweep


def run_sweep(request: RunRequest) -> tuple[Path, SweepResult]:
    """Plan, run every point within budget, then publish sweep.json and its report."""
    section, suite, reports = _check(request), request.suite, request.reports_root
    device = str(select_device(suite.device))
    with no_empty_folders_left(reports), claimed(reports, suite.name, request.resume) as claim:
        try:
            return _run_claimed(request, section, device, claim.run_id, claim.work)
        except KeyboardInterrupt as exc:  # SIGTERM or Ctrl-C: the CLI's one line says it
            hint = (
                f"sweep {claim.run_id}'s finished points are kept in {claim.work}; continue it "
                f"with: {resume_command(request.argv, claim.run_id)}"
                if (claim.work / SETTINGS_NAME).is_file()
                else None
            )
            raise as_stopped(exc, hint) from None


def _run_claimed(
    request: RunRequest, section: SweepSection, device: str, sweep_id: str, work: Path
) -> tuple[Path, SweepResult]:
    """The sweep, once its id is reserved and its work folder locked by this process."""
    suite, final = request.suite, request.reports_root / sweep_id
    if final.exists():
        raise BenchError(f"{final} already holds a finished sweep; start a new one")
    created = _claim_work_dir(work, suite, resume=request.resume is not None)
    environment = fingerprint(device=device)
    dataset = load_data(request, suite.data.dataset)
    grid_points, candidates = plan(section, base_config(suite, dataset), suite.seed)
    runnable = [c for c in candidates if c.excluded is None]
    console.log(f"sweep {sweep_id}: {len(runnable)} of {grid_points} grid points to train")
    finished: dict[str, SweepPoint] = {}
    todo = []
    for number, point in enumerate(candidates, 1):
        done = work / "points" / point.id / POINT_NAME
        if point.excluded is not None:
            finished[point.id] = point.record(*point.excluded)
        elif done.is_file() and (previous := read_record(SweepPoint, done)).status == "ok":
            console.log(f"[{number}/{len(candidates)}] {point.id}: finished before, skipped")
            finished[point.id] = previous
        else:
            todo.append(point)
    if request.ray_address is None:
        runs = run_in_turn(request, todo, dataset, device, work)
    else:
        runs = run_on_ray(request, todo, dataset, request.ray_address)
    for point, outcome in runs:  # each on disk the moment it ends: a resume skips it
        write_record(work / "points" / point.id / POINT_NAME, outcome)
        console.log(f"{point.id}: {outcome.status} {outcome.reason or ''}".rstrip())
        finished[point.id] = outcome
    points = [finished[c.id] for c in candidates]
    result = SweepResult(
        sweep_id=sweep_id,
        created=created,
        command=["resnest-bench", *request.argv[1:]],
        seed=suite.seed,
        environment=environment,
        config=run_config(request, device),
        mode="grid" if section.samples is None else "random",
        grid_points=grid_points,
        max_params=section.max_params,
        max_macs=section.max_macs,
        points=points,
    )
    with staged_dir(final) as stage:
        write_record(stage / SWEEP_NAME, result)
        write_sweep_report(stage, result)
    return final, result
