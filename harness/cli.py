"""`resnest-bench`: parse, build the config, call the harness, print. No logic hides here.

The flags that set suite keys are declared in harness.flags. Step commands are one-step
suites, so they share the suite validation and doctor's preflight.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnest_bench.harness import console, flags
from resnest_bench.harness.config import Suite, load_suite, step_suite
from resnest_bench.harness.console import published
from resnest_bench.harness.errors import BenchError, Int8Rejected, PartlyFailed
from resnest_bench.harness.signals import Stopped, stop_on_signals
from resnest_bench.harness.store.places import data_root, reports_root
from resnest_bench.harness.store.storage import os_error_message
from resnest_bench.models import ModelError

if TYPE_CHECKING:
    from resnest_bench.harness.stages import RunRequest

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


def _request(args: argparse.Namespace, suite: Suite, suite_path: Path | None) -> RunRequest:
    from resnest_bench.harness.stages import RunRequest

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


def _run(args: argparse.Namespace, suite: Suite, suite_path: Path | None, named: str) -> int:
    from resnest_bench.harness.doctor import preflight
    from resnest_bench.harness.pipeline import run_suite

    request = _request(args, suite, suite_path)
    preflight(request, named)
    final = run_suite(request)
    if final is None:  # a data-parallel rank other than 0: rank 0 publishes
        return 0
    published(final, "report.md")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    suite, path = load_suite(args.suite, quick=args.quick, overrides=flags.overrides_from(args))
    return _run(args, suite, path, args.suite)


def cmd_doctor(args: argparse.Namespace) -> int:
    from resnest_bench.harness.doctor import default_suite, failures, host_gpus, quick_checks, smoke

    name, why = (args.suite, "named") if args.suite else default_suite(host_gpus())
    print(f"doctor: checking suite {name} ({why})", flush=True)
    suite, _ = load_suite(name, quick=True, overrides=flags.overrides_from(args))
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

    suite, path = load_suite(args.suite, quick=args.quick, overrides=flags.overrides_from(args))
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
    return _run(args, step_suite(args.command, flags.overrides_from(args)), None, args.command)


def cmd_scaling(args: argparse.Namespace) -> int:
    from resnest_bench.harness.sweep.scaling import SCALING_MD, run_scaling, without_nproc

    rest = without_nproc(args.given)
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
    from resnest_bench.harness.report.rerender import rerender

    for path in rerender(Path(args.result)):
        print(path)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnest-bench",
        description="Train, export and time ResNeSt split-attention networks; write reports.",
    )
    flags.add_anywhere(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_suite_commands(sub)
    _add_tool_commands(sub)
    return parser


def _add_suite_commands(sub: Any) -> None:
    """The commands that run something: a suite, a sweep, one step, a scaling table."""
    run = sub.add_parser("run", help="run a suite end to end (gpu, cpu-runtime, or a .toml)")
    flags.add_suite(run)
    flags.add_quick(run)
    flags.add_checkpoint(run, "deploy this checkpoint instead of training one")
    flags.suite_flag(
        run, "--steps", key="steps", nargs="+", help="only these of the suite's steps (train ...)"
    )
    flags.add_common(run)
    flags.add_data(run, "replace the suite's data set (synthetic: a labelled smoke run)")
    flags.add_model(run)
    flags.add_training(run)
    flags.add_nproc(run)
    flags.add_deploy(run)
    flags.add_int8(run)
    run.set_defaults(handler=cmd_run)

    sweep = sub.add_parser(
        "sweep", help="train and deploy many configs around one; Pareto report (a [sweep] suite)"
    )
    sweep.add_argument("suite", help="bundled sweep suite (sweep) or path to a suite .toml")
    flags.add_quick(sweep)
    flags.suite_flag(
        sweep,
        "--samples",
        key="sweep.samples",
        type=int,
        help="random search: train this many points",
    )
    flags.suite_flag(
        sweep, "--max-params", key="sweep.max_params", type=int, help="parameter budget per point"
    )
    flags.suite_flag(
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
    flags.add_common(sweep)
    flags.add_data(sweep, "replace the suite's data set (synthetic: a labelled smoke run)")
    flags.add_model(sweep)
    flags.add_training(sweep)
    flags.add_deploy(sweep)
    flags.add_int8(sweep)
    sweep.set_defaults(handler=cmd_sweep)

    helps = {
        "train": "train models on CIFAR-10/100, a folder or synthetic data",
        "transfer": "fine-tune a checkpoint (ours or official ImageNet) on another data set",
        "export": "build a checkpoint's deployable files (ONNX, int8, .ort, OpenVINO, .tflite)",
        "infer": "time every runtime on a checkpoint: latency, throughput, accuracy, memory",
    }
    for name, help_text in helps.items():
        step = sub.add_parser(name, help=help_text)
        flags.add_common(step)
        flags.add_data(step, "data set (default cifar10; transfer: cifar100)")
        flags.add_model(step)
        if name != "train":
            flags.add_checkpoint(step, "trained weights (ours, official or timm)")
        if name in ("train", "transfer"):
            flags.add_training(step)
            flags.add_nproc(step)
        if name == "infer":
            flags.add_deploy(step)
        if name in ("export", "infer"):
            flags.add_int8(step)
        step.set_defaults(handler=cmd_step)

    scaling = sub.add_parser(
        "scaling", help="train a suite at 1, 2, ... N ranks here; speed-up and efficiency table"
    )
    flags.add_suite(scaling)
    flags.add_nproc(scaling, counts=True)
    flags.add_quick(scaling)
    flags.add_common(scaling)
    flags.add_data(scaling, "replace the suite's data set (synthetic: a labelled smoke run)")
    flags.add_model(scaling)
    flags.add_training(scaling)
    scaling.set_defaults(handler=cmd_scaling)


def _add_tool_commands(sub: Any) -> None:
    """The commands around runs: list models, check the machine, plan, compare, re-render,
    cross-check, clean."""
    models = sub.add_parser("models", help="list model configs with params and MACs")
    flags.add_json(models)
    flags.add_stem(models, "override every stem")
    models.add_argument("--num-classes", type=int, help="override every head")
    models.set_defaults(handler=cmd_models)

    doctor = sub.add_parser("doctor", help="check this machine before a long run (and smoke it)")
    doctor.add_argument(
        "suite",
        nargs="?",
        help="suite to check for (default: gpu where the driver lists a GPU, else cpu-runtime)",
    )
    doctor.add_argument("--no-smoke", action="store_true", help="the quick checks only")
    flags.add_folders(doctor)
    doctor.set_defaults(handler=cmd_doctor)

    plan = sub.add_parser("plan", help="what a suite would run on this GPU or a named one")
    flags.add_suite(plan)
    plan.add_argument("--gpu", help="plan for a named GPU (V100, T4, H100 NVL, ...), not this one")
    plan.add_argument("--driver", help="NVIDIA driver version to plan for, e.g. 535.104")
    flags.add_quick(plan)
    flags.add_json(plan)
    plan.set_defaults(handler=cmd_plan)

    compare = sub.add_parser("compare", help="merge results from several machines into one table")
    compare.add_argument("results", nargs="+", help="result.json files or run directories")
    compare.add_argument("--seed-ref", action="store_true", help="add the seed study's figures")
    flags.add_reports(compare, "where the comparison directory goes")
    compare.set_defaults(handler=cmd_compare)

    report = sub.add_parser("report", help="re-render report.md and plots of a run or a sweep")
    report.add_argument("result", help="a run or sweep directory, its result.json or sweep.json")
    report.set_defaults(handler=cmd_report)

    crosscheck = sub.add_parser(
        "crosscheck",
        help="time a run's CPU targets again beside the vendors' tools and plain loops",
    )
    crosscheck.add_argument("run", help="a published run directory (with its artifacts/)")
    flags.add_rounds(crosscheck, "alternating rounds (default: the run's)")
    crosscheck.set_defaults(handler=cmd_crosscheck)

    clean = sub.add_parser(
        "clean", help="list (--apply: remove) what killed, refused and finished runs left"
    )
    flags.add_reports(clean)
    clean.add_argument("--apply", action="store_true", help="remove (default: only list)")
    clean.set_defaults(handler=cmd_clean)


def _launch(args: argparse.Namespace) -> int:
    """--nproc N outside torchrun: this same command line as N ranks (harness.torchrun)."""
    from resnest_bench.harness.torchrun import launch

    launch(args.nproc, args.given)
    return 0


# Loggers of libraries the converters import that warn their own authors (torch's pytree) or
# list optional GPU kernels missing on a CPU machine (torchao): shown only with -v.
NOISY_LOGGERS = ("torchao", "torch.utils._pytree")


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    # --quiet and -v work anywhere on the line, not only before the command
    anywhere = flags.anywhere_words()
    switches = {anywhere[a] for a in given if a in anywhere}
    args = build_parser().parse_args([a for a in given if a not in anywhere])
    console.configure(quiet="quiet" in switches, verbose="verbose" in switches)
    if "verbose" not in switches:
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
