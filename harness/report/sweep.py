"""A sweep's report.md and plot, rendered from a SweepResult (no torch, no runtime).

One table lists every point (size, accuracy, s/epoch, batch-1 latency per target, int8 size);
two Pareto fronts pick the points no other point beats: accuracy vs latency (each point at its
fastest deployed target, with that target's own top-1) and accuracy vs parameters (the trained
fp32 model's top-1). Published figures (TPSNet, the seed study) are drawn as labelled
reference points: measured elsewhere, on real CIFAR-10, never by this tool.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, NamedTuple

from resnest_bench.harness.report import markdown as md
from resnest_bench.harness.report.compare import SEED_TRAINING
from resnest_bench.harness.report.pareto import pareto_front
from resnest_bench.harness.report.plots import save_figure
from resnest_bench.harness.report.run import environment_lines
from resnest_bench.harness.results.deployment import Target
from resnest_bench.harness.results.sweep import SweepPoint, SweepResult
from resnest_bench.harness.store.atomic import atomic_write_text

REPORT_NAME = "report.md"
PLOT_NAME = "pareto.png"
MOBILE_BUDGET = 5_000_000  # TPSNet's rule for a mobile network


class Reference(NamedTuple):
    """A published CIFAR-10 figure: parameters and test top-1 (fraction)."""

    label: str
    params: int
    top1: float
    source: str


def _seed_mean(block: str) -> float:
    """The seed study's CIFAR-10 top-1 for a block, averaged over its K80/P100/V100 runs."""
    return statistics.fmean(row.top1 for row in SEED_TRAINING if row.block == block)


# Parameters of the seed's networks at 10 classes: resnest50d and resnest50d-basic as built
# here (models.profile; asserted in tests/test_sweep_report.py).
SEED_BASIC_PARAMS = 22_957_290
SEED_BOTTLENECK_PARAMS = 25_454_730
REFERENCES = (
    Reference("TPSNet", 4_960_000, 0.9484, "seed 004: ResNet [13,13,13], 300 epochs"),
    Reference(
        "seed basic R-50",
        SEED_BASIC_PARAMS,
        _seed_mean("basic"),
        "seed study Table 2, mean of K80/P100/V100",
    ),
    Reference(
        "seed bottleneck R-50",
        SEED_BOTTLENECK_PARAMS,
        _seed_mean("bottleneck"),
        "seed study Table 2, mean of K80/P100/V100",
    ),
)


class Fastest(NamedTuple):
    """A point at its fastest deployed target: batch-1 median ms and that target's top-1 (%)."""

    point: SweepPoint
    target: Target
    latency_ms: float
    top1_pct: float


def fastest_target(point: SweepPoint) -> Fastest | None:
    timed = [
        t
        for t in (point.deployment.ok_targets() if point.deployment else [])
        if t.latency_ms is not None and t.top1_full is not None
    ]
    if not timed:
        return None
    best = min(timed, key=lambda t: t.latency_ms.median)
    return Fastest(point, best, best.latency_ms.median, best.top1_full)


def latency_front(points: list[SweepPoint]) -> list[Fastest]:
    options = [f for f in map(fastest_target, points) if f is not None]
    return pareto_front(options, cost=lambda f: f.latency_ms, value=lambda f: f.top1_pct)


def params_front(points: list[SweepPoint]) -> list[SweepPoint]:
    trained = [p for p in points if p.top1 is not None and p.params is not None]
    return pareto_front(trained, cost=lambda p: p.params, value=lambda p: p.top1)


def target_names(points: list[SweepPoint]) -> list[str]:
    """Every target measured on some point, in the order the deployments list them."""
    names: dict[str, None] = {}
    for point in points:
        for target in point.deployment.ok_targets() if point.deployment else []:
            names.setdefault(target.target, None)
    return list(names)


def _epoch_s(point: SweepPoint) -> str:
    summary = point.training.summary if point.training else None
    if summary is None:
        return md.MISSING
    if summary.steady_epoch_s is not None:
        return f"{summary.steady_epoch_s.median:.3g}"
    return f"{summary.first_epoch_s:.3g} (1st)" if summary.first_epoch_s else md.MISSING


def _int8(point: SweepPoint) -> str:
    int8 = point.deployment.artifacts.int8 if point.deployment else None
    if int8 is None:
        return md.MISSING
    flag = "" if int8.within_limit else f" (loses {int8.drop_pts:.1f} pts)"
    return md.mib(int8.size_bytes) + flag


def _short(point: SweepPoint) -> str:
    """p03 of p03-basic-r2-...: the table's and the plot's label."""
    return point.id.split("-", 1)[0]


def _status(point: SweepPoint) -> str:
    return point.status if not point.reason else f"{point.status}: {point.reason}"


def points_table(points: list[SweepPoint]) -> str:
    targets = target_names(points)
    head = [
        "point",
        "block",
        "radix",
        "card.",
        "width",
        "blocks/stage",
        "params",
        "MMACs",
        "top-1",
        "s/epoch",
        *[f"{name} ms" for name in targets],
        "int8 MiB",
        "status",
    ]
    rows = []
    for p in points:
        done = p.deployment.ok_targets() if p.deployment else []
        latency = {t.target: t.latency_ms for t in done}
        rows.append(
            [
                _short(p),
                f"{p.spec.block} ({p.spec.stem} stem)",
                str(p.spec.radix),
                str(p.spec.cardinality),
                f"{p.spec.width:g}",
                "-".join(map(str, p.spec.layers)),
                md.num(p.params),
                md.MISSING if p.macs is None else f"{p.macs / 1e6:.1f}",
                md.pct(p.top1),
                _epoch_s(p),
                *[md.num(latency[n].median) if latency.get(n) else md.MISSING for n in targets],
                _int8(p),
                _status(p),
            ]
        )
    return md.table(head, rows)


def _fronts(points: list[SweepPoint]) -> list[str]:
    by_latency = latency_front(points)
    by_params = params_front(points)
    return [
        "## Pareto fronts",
        "",
        "Accuracy vs batch-1 latency: each point at its fastest deployed target, with the top-1 "
        "that target measured on the test images.",
        "",
        md.table(
            ["point", "fastest target", "batch-1 ms (median)", "top-1 (that target)", "params"],
            [
                [
                    f.point.id,
                    f.target.target,
                    md.num(f.latency_ms),
                    f"{f.top1_pct:.2f}%",
                    md.num(f.point.params),
                ]
                for f in by_latency
            ],
        )
        if by_latency
        else "No point was deployed and timed.",
        "",
        "Accuracy vs parameters (top-1 of the trained fp32 model after its last epoch):",
        "",
        md.table(
            ["point", "params", "top-1"],
            [[p.id, md.num(p.params), md.pct(p.top1)] for p in by_params],
        )
        if by_params
        else "No point finished training.",
    ]


def _data_line(result: SweepResult) -> str:
    runs = [p.training for p in result.points if p.training]
    settings = result.config.settings.get("data", {})
    label = runs[0].dataset.name if runs else str(settings.get("dataset"))
    if runs:
        label += f" ({runs[0].dataset.train_images:,} train / {runs[0].dataset.test_images:,} test)"
    if result.synthetic:
        label += (
            " - SYNTHETIC data: accuracies are smoke-test numbers, not comparable with the "
            "references"
        )
    return f"- Data: {label}"


def _space_lines(result: SweepResult) -> list[str]:
    counts = {s: sum(p.status == s for p in result.points) for s in ("ok", "failed", "over-budget")}
    budget = ", ".join(
        part
        for part in (
            f"<= {result.max_params:,} parameters" if result.max_params else "",
            f"<= {result.max_macs:,} MACs/image" if result.max_macs else "",
        )
        if part
    )
    drawn = (
        f"{len(result.points)} drawn at random (seed {result.seed}) from a grid of "
        f"{result.grid_points}"
        if result.mode == "random"
        else f"a grid of {result.grid_points}"
    )
    recipe = result.config.settings.get("train", {})
    return [
        f"- Points: {drawn}; budget {budget or 'none'} (checked before training); "
        f"{counts['ok']} ok, {counts['failed']} failed, {counts['over-budget']} over budget",
        f"- Recipe per point: {recipe.get('epochs')} epochs, batch {recipe.get('batch_size')}, "
        f"lr {recipe.get('lr')}, on {result.config.device}",
    ]


def render(result: SweepResult, plots: list[str]) -> str:
    """The sweep's report.md; every string from the record is escaped (it may be foreign)."""
    result = md.escaped(result)
    config = result.config
    parts = [
        f"# resnest-bench sweep: {config.suite}",
        "",
        f"- Sweep: `{result.sweep_id}`, created {result.created}, seed {result.seed}",
        f"- Command: `{' '.join(result.command)}`",
        f"- Suite: {config.suite}{' (--quick)' if config.quick else ''}",
        _data_line(result),
        *_space_lines(result),
        *environment_lines(result.environment),
        "",
        "## Points",
        "",
        "top-1: trained fp32 model, last epoch; s/epoch: steady-state median (epoch 1 apart); "
        "latency: batch 1, median ms per target; int8: the static int8 model's size.",
        "",
        points_table(result.points),
        "",
        *_fronts(result.points),
        "",
        "## References (published, not measured here)",
        "",
        md.table(
            ["reference", "params", "CIFAR-10 top-1", "source"],
            [[r.label, md.num(r.params), md.pct(r.top1), r.source] for r in REFERENCES],
        ),
    ]
    if plots:
        parts += ["", "## Plot", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(parts) + "\n"


class _Dot(NamedTuple):
    x: float
    y: float
    block: str
    label: str
    on_front: bool


def _draw(axes: Any, dots: list[_Dot], xlabel: str, title: str) -> None:
    """Points (circle: basic, square: bottleneck; red: on the front) and the front as a step."""
    markers = {"basic": "o", "bottleneck": "s"}
    for dot in dots:
        color = "#c44e52" if dot.on_front else "#8c8c8c"
        axes.scatter(dot.x, dot.y, marker=markers[dot.block], color=color, zorder=3)
        axes.annotate(
            dot.label, (dot.x, dot.y), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    front = sorted((d.x, d.y) for d in dots if d.on_front)
    axes.step(
        [x for x, _ in front],
        [y for _, y in front],
        where="post",
        color="#c44e52",
        label="Pareto front",
    )
    for block, marker in markers.items():
        axes.scatter([], [], marker=marker, color="#8c8c8c", label=f"{block} block")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test top-1 (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)


def plot_fronts(result: SweepResult, path: Path) -> None:
    """Two panels: top-1 vs batch-1 latency and top-1 vs parameters; fronts joined, references
    labelled, synthetic data said in the title."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5.2), layout="constrained")
    latency_axes, params_axes = figure.subplots(1, 2)
    front = latency_front(result.points)
    _draw(
        latency_axes,
        [
            _Dot(f.latency_ms, f.top1_pct, f.point.spec.block, _short(f.point), f in front)
            for f in map(fastest_target, result.points)
            if f is not None
        ],
        "batch-1 latency, ms (median, each point's fastest deployed target)",
        "accuracy vs latency",
    )
    by_params = params_front(result.points)
    _draw(
        params_axes,
        [
            _Dot(p.params / 1e6, 100 * p.top1, p.spec.block, _short(p), p in by_params)
            for p in result.points
            if p.top1 is not None and p.params is not None
        ],
        "parameters, millions (log); stars: published CIFAR-10 references",
        "accuracy vs parameters",
    )
    for ref in REFERENCES:
        params_axes.scatter(ref.params / 1e6, 100 * ref.top1, marker="*", s=120, color="#4c72b0")
        params_axes.annotate(
            f"{ref.label} {100 * ref.top1:.2f}%",
            (ref.params / 1e6, 100 * ref.top1),
            fontsize=7,
            xytext=(-4, 6),
            textcoords="offset points",
            ha="right",
        )
    params_axes.axvline(MOBILE_BUDGET / 1e6, linestyle=":", color="#555555")
    params_axes.text(
        MOBILE_BUDGET / 1e6,
        0.01,
        " 5M mobile budget",
        va="bottom",
        fontsize=7,
        color="#555555",
        transform=params_axes.get_xaxis_transform(),
    )
    params_axes.set_xscale("log")
    for axes in (latency_axes, params_axes):
        axes.legend(fontsize=7, loc="best")
    title = f"sweep {result.sweep_id}: red = on the Pareto front"
    if result.synthetic:
        title += " - SYNTHETIC data: this sweep's accuracies are smoke-test numbers"
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path)


def write_sweep_report(out_dir: Path, result: SweepResult) -> list[str]:
    """Write the plot and report.md into out_dir (each atomically); return the file names."""
    plots = []
    if any(p.top1 is not None for p in result.points):
        plot_fronts(result, out_dir / PLOT_NAME)
        plots.append(PLOT_NAME)
    atomic_write_text(out_dir / REPORT_NAME, render(result, plots))
    return [REPORT_NAME, *plots]
