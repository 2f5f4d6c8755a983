"""Command-line flags that set suite keys, each declared once with the key it sets.

A flag carries its suite key beside it (`suite_flag`), so the parser's declarations are the
only list of flags: `overrides_from` turns the flags a user gave into a suite-shaped dict, the
one merged over the suite file's values. Flags follow timm's names where one exists (--amp,
--channels-last, --torchcompile, -b/--batch-size).
"""

from __future__ import annotations

import argparse
from typing import Any, get_args

from resnest_bench.harness.choices import (
    CalibrationMethod,
    CompileMode,
    DatasetName,
    LrScaling,
    Precision,
    Spinning,
    Stem,
)
from resnest_bench.harness.formats import FORMATS

# A flag that sets a suite key carries the key beside it (suite_flag): "section.key" or a top
# key. Two sections are placeholders: "recipe" is the step the command trains (transfer for
# `transfer`, else train) and "speed" how it runs (the recipe, and under `run` transfer too).
SPEED, RECIPE = "speed", "recipe"


def suite_flag(p: argparse.ArgumentParser, *names: str, key: str, **kwargs: Any) -> None:
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


def add_reports(p: argparse.ArgumentParser, what: str = "reports folder") -> None:
    p.add_argument("--reports", help=f"{what} (default $RESNEST_BENCH_REPORTS or ./reports)")


def add_folders(p: argparse.ArgumentParser) -> None:
    """The reports folder, the data cache and the device: what doctor checks, and every run."""
    add_reports(p)
    p.add_argument("--data-dir", help="dataset cache (default $RESNEST_BENCH_DATA)")
    suite_flag(p, "--device", key="device", help="auto, cpu, cuda or cuda:N (default: the suite's)")


def add_common(p: argparse.ArgumentParser) -> None:
    add_folders(p)
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading data")
    suite_flag(p, "--seed", key="seed", type=int, help="random seed")


def add_suite(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="bundled suite name or path to a suite .toml")


def add_quick(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="the suite's minutes-long form")


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_checkpoint(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--checkpoint", help=help_text)


def add_stem(p: argparse.ArgumentParser, help_text: str) -> None:
    suite_flag(p, "--stem", key="model.stem", choices=get_args(Stem), help=help_text)


def add_rounds(p: argparse.ArgumentParser, help_text: str) -> None:
    suite_flag(p, "--rounds", key="deploy.rounds", type=int, help=help_text)


def add_data(p: argparse.ArgumentParser, default_help: str) -> None:
    suite_flag(
        p,
        "--dataset",
        key="data.dataset",
        choices=get_args(DatasetName),
        help=default_help,
    )
    suite_flag(
        p,
        "--folder",
        key="data.folder",
        help="image folder (one sub-folder per class) for --dataset folder",
    )
    suite_flag(
        p, "--train-subset", key="data.train_subset", type=int, help="use at most N training images"
    )
    suite_flag(
        p, "--test-subset", key="data.test_subset", type=int, help="use at most N test images"
    )
    suite_flag(
        p,
        "--val-fraction",
        key="data.val_fraction",
        type=float,
        help="held-out share of each class of a --folder without train/ and test/ (default 0.2)",
    )


def add_model(p: argparse.ArgumentParser) -> None:
    suite_flag(
        p, "--model", key="model.names", action="append", help="model config (repeat for several)"
    )
    add_stem(p, "stem (reports state it)")
    suite_flag(
        p, "--radix", key="model.radix", type=int, help="split-attention radix (0: plain ResNet)"
    )
    suite_flag(p, "--cardinality", key="model.cardinality", type=int, help="cardinal groups")


def add_training(p: argparse.ArgumentParser) -> None:
    suite_flag(p, "--epochs", key=f"{RECIPE}.epochs", type=int)
    suite_flag(p, "-b", "--batch-size", key=f"{RECIPE}.batch_size", type=int)
    suite_flag(p, "--lr", key=f"{RECIPE}.lr", type=float)
    suite_flag(
        p,
        "--milestones",
        key=f"{RECIPE}.milestones",
        type=int,
        nargs="*",
        help="epochs where lr is multiplied by 0.1",
    )
    suite_flag(
        p,
        "--step-size",
        key=f"{RECIPE}.step_size",
        type=int,
        help="StepLR period in epochs (instead of milestones)",
    )
    suite_flag(
        p, "--smoothing", key=f"{RECIPE}.label_smoothing", type=float, help="label smoothing"
    )
    suite_flag(
        p,
        "--precision",
        key=f"{SPEED}.precision",
        choices=get_args(Precision),
        help="auto (default): bf16 on sm_80+, fp16 on 7.x, fp32 below and on CPU",
    )
    p.add_argument("--amp", action="store_true", help="mixed precision (fp16, or --amp-dtype)")
    p.add_argument("--amp-dtype", choices=["float16", "bfloat16"], default="float16")
    suite_flag(p, "--channels-last", key=f"{SPEED}.channels_last", action="store_true")
    suite_flag(
        p,
        "--torchcompile",
        key=f"{SPEED}.compile",
        action="store_true",
        help="torch.compile the model",
    )
    suite_flag(
        p,
        "--compile-mode",
        key=f"{SPEED}.compile_mode",
        choices=get_args(CompileMode),
        help="torch.compile mode (reduce-overhead: CUDA graphs)",
    )
    suite_flag(
        p,
        "--auto-batch",
        key=f"{RECIPE}.auto_batch",
        action="store_true",
        help="halve the batch size on OOM",
    )
    suite_flag(
        p,
        "--target",
        key=f"{RECIPE}.target_accuracy",
        type=float,
        help="top-1 for time-to-accuracy (default 0.89)",
    )
    suite_flag(
        p,
        "--no-flip",
        key=f"{RECIPE}.flip",
        action="store_const",
        const=False,
        help="no random horizontal flip (digits, text)",
    )
    suite_flag(
        p,
        "--crop-padding",
        key=f"{RECIPE}.crop_padding",
        type=int,
        help="random-crop zero padding in pixels (4)",
    )
    p.add_argument("--resume", metavar="RUN_ID", help="continue a killed run from its checkpoints")
    suite_flag(
        p,
        "--lr-scaling",
        key=f"{RECIPE}.lr_scaling",
        choices=get_args(LrScaling),
        help="lr for the global batch (linear: x ranks)",
    )
    suite_flag(
        p,
        "--sync-bn",
        key=f"{RECIPE}.sync_batchnorm",
        action="store_true",
        help="SyncBatchNorm across ranks",
    )
    suite_flag(
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


def add_nproc(p: argparse.ArgumentParser, *, counts: bool = False) -> None:
    """--nproc N, or for `scaling` (counts) a list of rank counts, one run each."""
    if counts:
        p.add_argument(
            "--nproc", type=rank_counts, required=True, help="rank counts, 1 among them: 1,2,4"
        )
        return
    p.add_argument(
        "--nproc",
        type=int,
        help="data-parallel ranks on this host (runs torchrun); -b is then per rank",
    )


def rank_counts(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rank counts like 1,2,4, got {text!r}") from None


def add_deploy(p: argparse.ArgumentParser) -> None:
    suite_flag(
        p,
        "--runtimes",
        key="deploy.runtimes",
        nargs="+",
        help="torch-eager torch-compile ort-cpu ort-cuda ...",
    )
    suite_flag(
        p,
        "--threads",
        key="deploy.threads",
        type=int,
        help="threads per runtime (default: usable CPUs)",
    )
    suite_flag(
        p,
        "--spinning",
        key="deploy.spinning",
        choices=get_args(Spinning),
        help="idle threads spin as each library does (on) or sleep in every target (off: ORT "
        "spinning off, OMP_WAIT_POLICY=PASSIVE); auto: off only on a shared or quota-capped host",
    )
    add_rounds(p, "interleaved timing rounds (ratios per round)")
    suite_flag(
        p,
        "--timed-images",
        key="deploy.timed_images",
        type=int,
        help="test images timed one by one",
    )


def add_int8(p: argparse.ArgumentParser) -> None:
    suite_flag(
        p,
        "--formats",
        key="deploy.formats",
        nargs="+",
        metavar="FORMAT",
        help="build only these (and what they need): "
        + " ".join(FORMATS)
        + " (default: every format the selected or installed runtimes run)",
    )
    suite_flag(
        p,
        "--calibration-images",
        key="deploy.calibration_images",
        type=int,
        help="training images that calibrate int8",
    )
    suite_flag(
        p,
        "--calibration-method",
        key="deploy.calibration_method",
        choices=get_args(CalibrationMethod),
        help="how int8 activation ranges are drawn (ONNX Runtime: all three; OpenVINO and "
        "LiteRT calibrate by minmax and record it)",
    )
    suite_flag(
        p,
        "--int8-max-drop",
        key="deploy.int8_max_drop",
        type=float,
        help="top-1 points int8 may lose vs fp32 (held-out images)",
    )
    suite_flag(
        p,
        "--allow-int8-loss",
        key="deploy.allow_int8_loss",
        action="store_true",
        help="ship an int8 model that loses more than --int8-max-drop (else the run exits 3)",
    )


# Switches that work anywhere on the line, not only before the command: dest -> (names, help).
ANYWHERE = {
    "quiet": (("--quiet",), "no progress bars, log lines only (anywhere)"),
    "verbose": (("-v", "--verbose"), "per-round details (anywhere)"),
}


def add_anywhere(p: argparse.ArgumentParser) -> None:
    for dest, (names, help_text) in ANYWHERE.items():
        p.add_argument(*names, dest=dest, action="store_true", help=help_text)


def anywhere_words() -> dict[str, str]:
    """Each spelling of an anywhere switch -> its dest."""
    return {name: dest for dest, (names, _) in ANYWHERE.items() for name in names}
