"""`resnest-bench`: parse, build the config, call the harness, print. No logic hides here.

Flags follow timm's names where one exists (--amp, --channels-last, --torchcompile,
-b/--batch-size). Step commands are one-step suites, so they share the suite validation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from resnest_bench.harness import console
from resnest_bench.harness.config import CompileMode, Precision, Suite, load_suite, step_suite
from resnest_bench.harness.errors import BenchError, Int8Rejected, PartlyFailed
from resnest_bench.harness.signals import Stopped, stop_on_signals
from resnest_bench.harness.store.storage import os_error_message
from resnest_bench.models import ModelError

if TYPE_CHECKING:
    from resnest_bench.harness.pipeline import RunRequest

Handler = Callable[[argparse.Namespace], int]


def cmd_models(args: argparse.Namespace) -> int:
    from resnest_bench.models import list_models
    from resnest_bench.models.profile import model_summary

    overrides = {"stem": args.stem, "num_classes": args.num_classes}
    rows = [model_summary(name, **overrides) for name in list_models()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            row["gmacs"] = round(row["macs"] / 1e9, 3)
        console.print_table(
            "Model configs (params and GMACs at each config's default input size)",
            rows,
            ["name", "block", "stem", "input_size", "params", "gmacs"],
        )
    return 0


# A flag that sets a suite key carries the key beside it (_suite_flag): "section.key" or a top
# key. Two sections are placeholders: "recipe" is the step the command trains (transfer for
# `transfer`, else train) and "speed" how it runs (the recipe, and under `run` transfer too).
SPEED, RECIPE = "speed", "recipe"


def _suite_flag(p: argparse.ArgumentParser, *names: str, key: str, **kwargs: Any) -> None:
    """Add a flag that overrides suite key `key`; a switch sets True (or `const`) only when
    given, so an absent flag never overrides the suite file."""
    if kwargs.get("action") == "store_true":
        kwargs.update(action="store_const", const=True)
    action = p.add_argument(*names, **kwargs)
    p.set_defaults(suite_keys={**(p.get_default("suite_keys") or {}), action.dest: key})


def _sections_for(key: str, command: str) -> list[tuple[str, str]]:
    """(section, key) pairs a flag's suite key path lands on for `command`; ("", key): top."""
    section, _, name = key.rpartition(".")
    recipe = "transfer" if command == "transfer" else "train"
    if section == RECIPE:
        return [(recipe, name)]
    if section == SPEED:
        return [(recipe, name)] + ([("transfer", name)] if command == "run" else [])
    if key == "data.dataset" and command == "transfer":  # transfer's data set is its own
        return [("transfer", name)]
    return [(section, name)]


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the user gave, as a suite-shaped dict merged over the suite's values."""
    out: dict[str, Any] = {}
    for dest, key in (getattr(args, "suite_keys", None) or {}).items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        for section, name in _sections_for(key, args.command):
            (out.setdefault(section, {}) if section else out)[name] = value
    if getattr(args, "amp", False) and not getattr(args, "precision", None):  # timm's spelling
        precision = "bf16" if args.amp_dtype == "bfloat16" else "fp16"
        for section, name in _sections_for(f"{SPEED}.precision", args.command):
            out.setdefault(section, {})[name] = precision
    return out


def reports_root(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("RESNEST_BENCH_REPORTS", "reports"))


def host_path(path: Path) -> Path:
    """`path` as the host sees it, when this runs in a container whose reports folder compose
    mounted from the host ($RESNEST_BENCH_HOST_REPORTS): /reports/... exists only inside."""
    host, inside = (
        os.environ.get("RESNEST_BENCH_HOST_REPORTS"),
        os.environ.get("RESNEST_BENCH_REPORTS"),
    )
    if not host or not inside:
        return path
    try:
        return Path(host) / path.resolve().relative_to(Path(inside).resolve())
    except ValueError:
        return path


def published(folder: Path, main_file: str, what: str = "report") -> None:
    """Say where a result landed: its main file on stderr, the folder on stdout (for scripts);
    both as the host sees them, the container's path beside when they differ."""
    shown = host_path(folder)
    inside = f" (in the container: {folder / main_file})" if shown != folder else ""
    console.log(f"{what}: {shown / main_file}{inside}")
    print(shown)


def data_root(explicit: str | None) -> Path:
    default = Path.home() / ".cache" / "resnest-bench" / "data"
    return Path(explicit or os.environ.get("RESNEST_BENCH_DATA", default))


def _request(args: argparse.Namespace, suite: Suite, suite_path: Path | None) -> RunRequest:
    from resnest_bench.harness.pipeline import RunRequest

    return RunRequest(
        suite=suite,
        suite_path=suite_path,
        quick=getattr(args, "quick", False),
        reports_root=reports_root(args.reports),
        data_root=data_root(args.data_dir),
        checkpoint=Path(args.checkpoint) if getattr(args, "checkpoint", None) else None,
        resume=getattr(args, "resume", None),
        keep_checkpoints=getattr(args, "keep_checkpoints", False),
        download=not args.no_download,
        argv=["resnest-bench", *args.given],  # the argv main() was given, not the process's
        ray_address=getattr(args, "ray", None),
    )


def _run(args: argparse.Namespace, suite: Suite, suite_path: Path | None) -> int:
    from resnest_bench.harness.pipeline import run_suite

    final = run_suite(_request(args, suite, suite_path))
    if final is None:  # a data-parallel rank other than 0: rank 0 publishes
        return 0
    published(final, "report.md")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from resnest_bench.harness.doctor import failures, quick_checks

    suite, path = load_suite(args.suite, quick=args.quick, overrides=overrides_from(args))
    if suite.sweep is not None:
        raise BenchError(f"{args.suite} is a sweep suite: run `resnest-bench sweep {args.suite}`")
    checks = quick_checks(suite, reports_root(args.reports), data_root(args.data_dir))
    for check in failures(checks):
        raise BenchError(f"preflight (resnest-bench doctor): {check.line()}")
    return _run(args, suite, path)


def cmd_doctor(args: argparse.Namespace) -> int:
    from resnest_bench.harness.doctor import default_suite, failures, host_gpus, quick_checks, smoke

    over = {"device": args.device} if args.device else None
    name, why = (args.suite, "named") if args.suite else default_suite(host_gpus())
    print(f"doctor: checking suite {name} ({why})", flush=True)
    suite, _ = load_suite(name, quick=True, overrides=over)
    checks = quick_checks(suite, reports_root(args.reports), data_root(args.data_dir))
    for check in checks:
        print(check.line(), flush=True)
    if not args.no_smoke:
        checks.append(smoke(suite))
        print(checks[-1].line())
    failed = failures(checks)
    if failed:  # the last line says what stops a run, however many checks passed above it
        print(f"resnest-bench doctor: {failed[0].name}: {failed[0].detail}", file=sys.stderr)
    return 1 if failed else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from resnest_bench.harness.sweep.run import run_sweep

    suite, path = load_suite(args.suite, quick=args.quick, overrides=overrides_from(args))
    final, result = run_sweep(_request(args, suite, path))
    published(final, "report.md")
    failed = [point.id for point in result.points if point.status == "failed"]
    if failed:
        print(
            f"resnest-bench: {len(failed)} of {len(result.points)} points failed "
            f"({', '.join(failed)}); reasons in the report; "
            f"--resume {result.sweep_id} retries them",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_step(args: argparse.Namespace) -> int:
    step = {"infer": "deploy"}.get(args.command, args.command)
    if step in ("transfer", "deploy", "export") and not args.checkpoint:
        raise BenchError(f"{args.command} needs --checkpoint (a trained model to start from)")
    return _run(args, step_suite(step, overrides_from(args)), None)


def cmd_scaling(args: argparse.Namespace) -> int:
    from resnest_bench.harness.sweep.scaling import SCALING_MD, run_scaling

    given, rest = list(args.given), []
    given.remove("scaling")
    while given:  # the rest of the line goes to every `run`, without --nproc 1,2,...
        word = given.pop(0)
        if word == "--nproc":
            given.pop(0)
        elif not word.startswith("--nproc="):
            rest.append(word)
    final = run_scaling(args.suite, args.nproc, rest, reports_root(args.reports))
    published(final, SCALING_MD, "scaling table")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from resnest_bench.harness.gpu.plan import make_plan

    suite, _ = load_suite(args.suite, quick=args.quick)
    plan = make_plan(suite, quick=args.quick, gpu=args.gpu, driver=args.driver)
    print(plan.to_json() if args.json else plan.to_markdown(), end="" if not args.json else "\n")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from resnest_bench.harness.report.compare import write_comparison

    final = write_comparison(
        [Path(p) for p in args.results], reports_root(args.reports), seed_reference=args.seed_ref
    )
    published(final, "compare.md", "comparison")
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    """Time a published run's CPU targets beside the vendors' tools and plain loops."""
    from resnest_bench.harness.crosscheck.stage import crosscheck_published

    run_dir = Path(args.run)
    for name in crosscheck_published(run_dir, rounds=args.rounds):
        print(run_dir / name)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render a run's (result.json) or a sweep's (sweep.json) report from its results."""
    from resnest_bench.harness.results.sweep import SWEEP_NAME, SweepResult, read_record

    path = Path(args.result)
    if path.is_dir():
        path = path / (SWEEP_NAME if (path / SWEEP_NAME).is_file() else "result.json")
    if path.name == SWEEP_NAME:
        from resnest_bench.harness.report.sweep import write_sweep_report

        written = write_sweep_report(path.parent, read_record(SweepResult, path))
    else:
        from resnest_bench.harness.report.run import write_report
        from resnest_bench.harness.results import read_result

        written = write_report(path.parent, read_result(path))
    for name in written:
        print(path.parent / name)
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from resnest_bench.harness.store.clean import remove, survey

    root = reports_root(args.reports)
    entries = survey(root)
    for entry in entries:
        action = ("removed" if args.apply else "would remove") if entry.remove else "kept"
        print(f"{action:12} {entry.path}  ({entry.what}, {entry.size_bytes / 2**20:.1f} MB)")
    doomed = [e for e in entries if e.remove]
    total = sum(e.size_bytes for e in doomed) / 2**20
    if args.apply:
        remove(entries)
        print(f"removed {len(doomed)} item(s), {total:.1f} MB, under {root}")
    else:
        print(f"dry run: {len(doomed)} item(s), {total:.1f} MB; remove them with --apply")
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reports", help="reports folder (default $RESNEST_BENCH_REPORTS or ./reports)")
    p.add_argument("--data-dir", help="dataset cache (default $RESNEST_BENCH_DATA)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading data")
    _suite_flag(
        p, "--device", key="device", help="auto, cpu, cuda or cuda:N (default: the suite's)"
    )
    _suite_flag(p, "--seed", key="seed", type=int, help="random seed")


def _add_data(p: argparse.ArgumentParser, default_help: str) -> None:
    _suite_flag(
        p,
        "--dataset",
        key="data.dataset",
        choices=["cifar10", "cifar100", "synthetic", "folder"],
        help=default_help,
    )
    _suite_flag(
        p,
        "--folder",
        key="data.folder",
        help="image folder (one sub-folder per class) for --dataset folder",
    )
    _suite_flag(
        p, "--train-subset", key="data.train_subset", type=int, help="use at most N training images"
    )
    _suite_flag(
        p, "--test-subset", key="data.test_subset", type=int, help="use at most N test images"
    )
    _suite_flag(
        p,
        "--val-fraction",
        key="data.val_fraction",
        type=float,
        help="held-out share of each class of a --folder without train/ and test/ (default 0.2)",
    )


def _add_model(p: argparse.ArgumentParser) -> None:
    _suite_flag(
        p, "--model", key="model.names", action="append", help="model config (repeat for several)"
    )
    _suite_flag(
        p,
        "--stem",
        key="model.stem",
        choices=["imagenet", "cifar"],
        help="stem (reports state it)",
    )
    _suite_flag(
        p, "--radix", key="model.radix", type=int, help="split-attention radix (0: plain ResNet)"
    )
    _suite_flag(p, "--cardinality", key="model.cardinality", type=int, help="cardinal groups")


def _add_training(p: argparse.ArgumentParser) -> None:
    _suite_flag(p, "--epochs", key=f"{RECIPE}.epochs", type=int)
    _suite_flag(p, "-b", "--batch-size", key=f"{RECIPE}.batch_size", type=int)
    _suite_flag(p, "--lr", key=f"{RECIPE}.lr", type=float)
    _suite_flag(
        p,
        "--milestones",
        key=f"{RECIPE}.milestones",
        type=int,
        nargs="*",
        help="epochs where lr is multiplied by 0.1",
    )
    _suite_flag(
        p,
        "--step-size",
        key=f"{RECIPE}.step_size",
        type=int,
        help="StepLR period in epochs (instead of milestones)",
    )
    _suite_flag(
        p, "--smoothing", key=f"{RECIPE}.label_smoothing", type=float, help="label smoothing"
    )
    _suite_flag(
        p,
        "--precision",
        key=f"{SPEED}.precision",
        choices=get_args(Precision),
        help="auto (default): bf16 on sm_80+, fp16 on 7.x, fp32 below and on CPU",
    )
    p.add_argument("--amp", action="store_true", help="mixed precision (fp16, or --amp-dtype)")
    p.add_argument("--amp-dtype", choices=["float16", "bfloat16"], default="float16")
    _suite_flag(p, "--channels-last", key=f"{SPEED}.channels_last", action="store_true")
    _suite_flag(
        p,
        "--torchcompile",
        key=f"{SPEED}.compile",
        action="store_true",
        help="torch.compile the model",
    )
    _suite_flag(
        p,
        "--compile-mode",
        key=f"{SPEED}.compile_mode",
        choices=get_args(CompileMode),
        help="torch.compile mode (reduce-overhead: CUDA graphs)",
    )
    _suite_flag(
        p,
        "--auto-batch",
        key=f"{RECIPE}.auto_batch",
        action="store_true",
        help="halve the batch size on OOM",
    )
    _suite_flag(
        p,
        "--target",
        key=f"{RECIPE}.target_accuracy",
        type=float,
        help="top-1 for time-to-accuracy (default 0.89)",
    )
    _suite_flag(
        p,
        "--no-flip",
        key=f"{RECIPE}.flip",
        action="store_const",
        const=False,
        help="no random horizontal flip (digits, text)",
    )
    _suite_flag(
        p,
        "--crop-padding",
        key=f"{RECIPE}.crop_padding",
        type=int,
        help="random-crop zero padding in pixels (4)",
    )
    p.add_argument("--resume", metavar="RUN_ID", help="continue a killed run from its checkpoints")
    _suite_flag(
        p,
        "--lr-scaling",
        key=f"{RECIPE}.lr_scaling",
        choices=["none", "linear"],
        help="lr for the global batch (linear: x ranks)",
    )
    _suite_flag(
        p,
        "--sync-bn",
        key=f"{RECIPE}.sync_batchnorm",
        action="store_true",
        help="SyncBatchNorm across ranks",
    )
    _suite_flag(
        p,
        "--dist-timeout",
        key=f"{RECIPE}.dist_timeout_s",
        type=float,
        help="seconds a rank waits for a silent peer",
    )
    p.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep reports/work/<run> (training checkpoints) after the run finishes",
    )


def _add_nproc(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nproc",
        type=int,
        help="data-parallel ranks on this host (runs torchrun); -b is then per rank",
    )


def _ranks(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rank counts like 1,2,4, got {text!r}") from None


def _add_deploy(p: argparse.ArgumentParser) -> None:
    _suite_flag(
        p,
        "--runtimes",
        key="deploy.runtimes",
        nargs="+",
        help="torch-eager torch-compile ort-cpu ort-cuda ...",
    )
    _suite_flag(
        p,
        "--threads",
        key="deploy.threads",
        type=int,
        help="threads per runtime (default: usable CPUs)",
    )
    _suite_flag(
        p,
        "--spinning",
        key="deploy.spinning",
        choices=["on", "off", "auto"],
        help="idle threads spin as each library does (on) or sleep in every target (off: ORT "
        "spinning off, OMP_WAIT_POLICY=PASSIVE); auto: off only on a shared or quota-capped host",
    )
    _suite_flag(
        p,
        "--rounds",
        key="deploy.rounds",
        type=int,
        help="interleaved timing rounds (ratios per round)",
    )
    _suite_flag(
        p,
        "--timed-images",
        key="deploy.timed_images",
        type=int,
        help="test images timed one by one",
    )


def _add_int8(p: argparse.ArgumentParser) -> None:
    from resnest_bench.harness.config import DeploySection
    from resnest_bench.harness.formats import FORMATS

    _suite_flag(
        p,
        "--formats",
        key="deploy.formats",
        nargs="+",
        metavar="FORMAT",
        help="build only these (and what they need): "
        + " ".join(FORMATS)
        + " (default: every format the selected or installed runtimes run)",
    )
    _suite_flag(
        p,
        "--calibration-images",
        key="deploy.calibration_images",
        type=int,
        help="training images that calibrate int8",
    )
    _suite_flag(
        p,
        "--calibration-method",
        key="deploy.calibration_method",
        choices=get_args(DeploySection.model_fields["calibration_method"].annotation),
        help="how int8 activation ranges are drawn (ONNX Runtime: all three; OpenVINO and "
        "LiteRT calibrate by minmax and record it)",
    )
    _suite_flag(
        p,
        "--int8-max-drop",
        key="deploy.int8_max_drop",
        type=float,
        help="top-1 points int8 may lose vs fp32 (held-out images)",
    )
    _suite_flag(
        p,
        "--allow-int8-loss",
        key="deploy.allow_int8_loss",
        action="store_true",
        help="ship an int8 model that loses more than --int8-max-drop (else the run exits 3)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnest-bench",
        description="Train, export and time ResNeSt split-attention networks; write reports.",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars, log lines only (anywhere)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="per-round details (anywhere)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = sub.add_parser("models", help="list model configs with params and MACs")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.add_argument("--stem", choices=["imagenet", "cifar"], help="override every stem")
    models.add_argument("--num-classes", type=int, help="override every head")
    models.set_defaults(handler=cmd_models)

    run = sub.add_parser("run", help="run a suite end to end (gpu, cpu-runtime, or a .toml)")
    run.add_argument("suite", help="bundled suite name or path to a suite .toml")
    run.add_argument("--quick", action="store_true", help="the suite's minutes-long form")
    run.add_argument("--checkpoint", help="deploy this checkpoint instead of training one")
    _suite_flag(
        run, "--steps", key="steps", nargs="+", help="only these of the suite's steps (train ...)"
    )
    _add_common(run)
    _add_data(run, "replace the suite's data set (synthetic: a labelled smoke run)")
    _add_model(run)
    _add_training(run)
    _add_nproc(run)
    _add_deploy(run)
    _add_int8(run)
    run.set_defaults(handler=cmd_run)

    sweep = sub.add_parser(
        "sweep", help="train and deploy many configs around one; Pareto report (a [sweep] suite)"
    )
    sweep.add_argument("suite", help="bundled sweep suite (sweep) or path to a suite .toml")
    sweep.add_argument("--quick", action="store_true", help="the suite's minutes-long form")
    _suite_flag(
        sweep,
        "--samples",
        key="sweep.samples",
        type=int,
        help="random search: train this many points",
    )
    _suite_flag(
        sweep, "--max-params", key="sweep.max_params", type=int, help="parameter budget per point"
    )
    _suite_flag(
        sweep, "--max-macs", key="sweep.max_macs", type=int, help="MACs-per-image budget per point"
    )
    sweep.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help="run the points as tasks on a Ray cluster (default: the one this machine is in; "
        "'local': start one here); needs the ray extra",
    )
    _add_common(sweep)
    _add_data(sweep, "replace the suite's data set (synthetic: a labelled smoke run)")
    _add_model(sweep)
    _add_training(sweep)
    _add_deploy(sweep)
    _add_int8(sweep)
    sweep.set_defaults(handler=cmd_sweep)

    helps = {
        "train": "train models on CIFAR-10/100, a folder or synthetic data",
        "transfer": "fine-tune a checkpoint (ours or official ImageNet) on another data set",
        "export": "build a checkpoint's deployable files (ONNX, int8, .ort, OpenVINO, .tflite)",
        "infer": "time every runtime on a checkpoint: latency, throughput, accuracy, memory",
    }
    for name, help_text in helps.items():
        step = sub.add_parser(name, help=help_text)
        _add_common(step)
        _add_data(step, "data set (default cifar10; transfer: cifar100)")
        _add_model(step)
        if name != "train":
            step.add_argument("--checkpoint", help="trained weights (ours, official or timm)")
        if name in ("train", "transfer"):
            _add_training(step)
            _add_nproc(step)
        if name == "infer":
            _add_deploy(step)
        if name in ("export", "infer"):
            _add_int8(step)
        step.set_defaults(handler=cmd_step)

    scaling = sub.add_parser(
        "scaling", help="train a suite at 1, 2, ... N ranks here; speed-up and efficiency table"
    )
    scaling.add_argument("suite", help="bundled suite name or path to a suite .toml")
    scaling.add_argument(
        "--nproc", type=_ranks, required=True, help="rank counts, 1 among them: 1,2,4"
    )
    scaling.add_argument("--quick", action="store_true", help="the suite's minutes-long form")
    _add_common(scaling)
    _add_data(scaling, "replace the suite's data set (synthetic: a labelled smoke run)")
    _add_model(scaling)
    _add_training(scaling)
    scaling.set_defaults(handler=cmd_scaling)

    doctor = sub.add_parser("doctor", help="check this machine before a long run (and smoke it)")
    doctor.add_argument(
        "suite",
        nargs="?",
        help="suite to check for (default: gpu where the driver lists a GPU, else cpu-runtime)",
    )
    doctor.add_argument("--no-smoke", action="store_true", help="the quick checks only")
    doctor.add_argument("--reports", help="reports folder (default $RESNEST_BENCH_REPORTS)")
    doctor.add_argument("--data-dir", help="dataset cache (default $RESNEST_BENCH_DATA)")
    doctor.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the suite's)")
    doctor.set_defaults(handler=cmd_doctor)

    plan = sub.add_parser("plan", help="what a suite would run on this GPU or a named one")
    plan.add_argument("suite", help="bundled suite name or path to a suite .toml")
    plan.add_argument("--gpu", help="plan for a named GPU (V100, T4, H100 NVL, ...), not this one")
    plan.add_argument("--driver", help="NVIDIA driver version to plan for, e.g. 535.104")
    plan.add_argument("--quick", action="store_true", help="the suite's minutes-long form")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(handler=cmd_plan)

    compare = sub.add_parser("compare", help="merge results from several machines into one table")
    compare.add_argument("results", nargs="+", help="result.json files or run directories")
    compare.add_argument("--seed-ref", action="store_true", help="add the seed study's figures")
    compare.add_argument("--reports", help="where the comparison directory goes")
    compare.set_defaults(handler=cmd_compare)

    report = sub.add_parser("report", help="re-render report.md and plots of a run or a sweep")
    report.add_argument("result", help="a run or sweep directory, its result.json or sweep.json")
    report.set_defaults(handler=cmd_report)

    crosscheck = sub.add_parser(
        "crosscheck",
        help="time a run's CPU targets again beside the vendors' tools and plain loops",
    )
    crosscheck.add_argument("run", help="a published run directory (with its artifacts/)")
    crosscheck.add_argument("--rounds", type=int, help="alternating rounds (default: the run's)")
    crosscheck.set_defaults(handler=cmd_crosscheck)

    clean = sub.add_parser(
        "clean", help="list (--apply: remove) what killed, refused and finished runs left"
    )
    clean.add_argument("--reports", help="reports folder (default $RESNEST_BENCH_REPORTS)")
    clean.add_argument("--apply", action="store_true", help="remove (default: only list)")
    clean.set_defaults(handler=cmd_clean)
    return parser


def _launch(args: argparse.Namespace) -> int:
    """--nproc N outside torchrun: this same command line as N ranks (harness.torchrun)."""
    from resnest_bench.harness.torchrun import launch

    launch(args.nproc, args.given)
    return 0


ANYWHERE = {"--quiet": "quiet", "-v": "verbose", "--verbose": "verbose"}
# Loggers of libraries the converters import that warn their own authors (torch's pytree) or
# list optional GPU kernels missing on a CPU machine (torchao): shown only with -v.
NOISY_LOGGERS = ("torchao", "torch.utils._pytree")


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    # --quiet and -v work anywhere on the line, not only before the command
    flags = {ANYWHERE[a] for a in given if a in ANYWHERE}
    args = build_parser().parse_args([a for a in given if a not in ANYWHERE])
    console.configure(quiet="quiet" in flags, verbose="verbose" in flags)
    if "verbose" not in flags:
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    handler: Handler = args.handler
    args.given = given
    if isinstance(getattr(args, "nproc", None), int) and "WORLD_SIZE" not in os.environ:
        handler = _launch
    try:
        with stop_on_signals():
            return handler(args)
    except Stopped as exc:  # SIGTERM or Ctrl-C: staging removed, lock released, hint attached
        print(f"resnest-bench: {exc}", file=sys.stderr)
        return exc.exit_code
    except (Int8Rejected, PartlyFailed) as exc:  # the report is written; the line says why
        print(f"resnest-bench: {exc}", file=sys.stderr)
        return exc.exit_code
    except (BenchError, ModelError) as exc:
        print(f"resnest-bench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0
    except OSError as exc:  # a storage fault no earlier check caught: still one line
        print(f"resnest-bench: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resnest-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
