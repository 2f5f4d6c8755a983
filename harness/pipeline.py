"""Run a suite end to end: data -> train -> transfer -> build/measure -> result.json + report.md.

Every step command of the CLI is a one-step suite, so there is one path through the harness.
This module orders the stages (harness.stages), claims the run and publishes it; the CLI
checks the request first (harness.doctor.preflight). Each stage gets only its own section of
the typed Suite (suite.train, suite.transfer, suite.deploy, suite.data, suite.model) and
returns a typed result; nothing is restated here.
Layout under the reports folder:

    <reports>/<run_id>/        result.json, report.md, plots, per-epoch logs, artifacts/
                               (staged: it appears whole when the run succeeds, or not at all)
    <reports>/work/<run_id>/   training checkpoints, written every epoch; `--resume RUN_ID`
                               continues from them after a crash or a kill
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from resnest_bench import models
from resnest_bench.harness import console
from resnest_bench.harness.artifacts import MODEL_FILE
from resnest_bench.harness.checkpoints import CheckpointWriteError, save_torch_artifact
from resnest_bench.harness.config import Suite
from resnest_bench.harness.data import Dataset
from resnest_bench.harness.errors import BenchError, Int8Rejected, PartlyFailed, one_line
from resnest_bench.harness.gpu.accel import release_device_memory, select_device
from resnest_bench.harness.host.envinfo import fingerprint
from resnest_bench.harness.report.run import write_report
from resnest_bench.harness.results import RunResult, write_result
from resnest_bench.harness.results.deployment import Deployment
from resnest_bench.harness.results.training import Training, TrainingRun
from resnest_bench.harness.signals import as_stopped
from resnest_bench.harness.stages import (
    RunRequest,
    build_model,
    deploy_model,
    fine_tune,
    load_data,
    model_to_deploy,
    run_config,
    train_one,
)
from resnest_bench.harness.store.atomic import atomic_write_text, staged_dir
from resnest_bench.harness.store.reuse import newest_model
from resnest_bench.harness.store.runs import LOG_NAME, Claim, claimed, discard
from resnest_bench.harness.store.storage import (
    check_free_space,
    no_empty_folders_left,
    probe_writable,
    run_bytes,
)
from resnest_bench.harness.train import train
from resnest_bench.harness.train.distributed import Ranks, process_group, ranks_from_env
from resnest_bench.harness.train.loop import CHECKPOINT_NAME
from resnest_bench.models.profile import count_params

RESULT_NAME = "result.json"
TRAINING_RESULT_NAME = "training-result.json"  # in work/<run_id>, written when training ends


def _kind(suite: Suite) -> str:
    return "suite" if len(suite.steps) > 1 else suite.steps[0].replace("export", "deploy")


RUN_ID_FILE = "RESNEST_BENCH_RUN_ID_FILE"  # where rank 0 tells the launcher its run id


def resume_command(argv: list[str], run_id: str) -> str:
    """The exact command that continues run_id: the same line with --resume RUN_ID."""
    words, skip = ["resnest-bench"], False
    for word in argv[1:]:
        if skip or word == "--resume":
            skip = not skip
            continue
        words.append(word)
    return shlex.join([*words, "--resume", run_id])


def _check_storage(request: RunRequest, work: Path) -> None:
    """Stop in a second, not after an hour of training, when the run could not write its
    checkpoints or report: write probes of each folder, free space against the run's size."""
    suite, steps = request.suite, set(request.suite.steps)
    probe_writable(work, "work folder")
    if request.checkpoint is not None:  # fp32 weights: 4 bytes per parameter
        params = [request.checkpoint.stat().st_size // 4]
    else:
        stem = {"stem": suite.model.stem} if suite.model.stem else {}
        with torch.device("meta"):
            params = [
                count_params(models.create_model(name, num_classes=100, **stem))
                for name in suite.model.names
            ]
    need = run_bytes(
        params, train=bool(steps & {"train", "transfer"}), deploy=bool(steps & {"export", "deploy"})
    )
    check_free_space(request.reports_root, need, "reports folder")


def run_suite(request: RunRequest) -> Path | None:
    """Run every step of the suite; return the published report directory. Ctrl-C or a crash
    names the run and the command that resumes it; finished runs drop their checkpoints.
    Under torchrun, rank 0 runs the suite and publishes; the other ranks only train beside it
    (harness.train.distributed) and return None."""
    # "cuda" with no GPU -> GpuRequiredError, before any work
    device = select_device(request.suite.device)
    request = with_reused_model(request)
    ranks = ranks_from_env()
    if ranks is None:
        return _run_suite(request, str(device))
    steps = set(request.suite.steps)
    if "transfer" not in steps and ("train" not in steps or request.checkpoint is not None):
        raise BenchError("several ranks (torchrun) run only suites that train or fine-tune")
    device = ranks.device(device)
    with process_group(ranks, device, request.suite.train.dist_timeout_s):
        if not ranks.writer:
            _train_beside(request, str(device), ranks)
            return None
        return _run_suite(request, str(device))


def with_reused_model(request: RunRequest) -> RunRequest:
    """The request with `model.reuse_from`'s newest model as its checkpoint, when the suite
    names one, no --checkpoint was given and such a model exists (else it trains its own)."""
    source = request.suite.model.reuse_from
    if source is None or request.checkpoint is not None:
        return request
    found = newest_model(request.reports_root, source)
    name = request.suite.name
    if found is None:
        console.log(f"{name}: no {source}-suite model under the reports folder; training one")
        return request
    console.log(f"{name}: deploying the newest {source}-suite model, {found}")
    return replace(request, checkpoint=found)


def _train_beside(request: RunRequest, device: str, ranks: Ranks) -> None:
    """A rank other than 0: the same data and training calls as rank 0's _run_steps, so every
    collective meets its partner; nothing is read or written (rank 0's weights reach this
    rank when DDP wraps the model, its checkpoint when a run resumes)."""
    suite, steps = request.suite, set(request.suite.steps)
    unused = request.reports_root / "work" / f"rank-{ranks.rank}"
    dataset = load_data(request, suite.data.dataset) if steps - {"transfer"} else None
    summaries = {}
    if "train" in steps and request.checkpoint is None:
        for name in suite.model.names:
            model = build_model(suite, name, dataset.num_classes)
            run = train(
                model, dataset, unused, suite.train, device=device, seed=suite.seed, ranks=ranks
            )
            summaries[name] = run.summary.best_test_top1 or 0.0
    if "transfer" in steps:
        data = load_data(request, suite.transfer.dataset)
        best = max(summaries, key=summaries.__getitem__, default=suite.model.names[0])
        model = build_model(suite, best, data.num_classes)
        train(model, data, unused, suite.transfer, device=device, seed=suite.seed, ranks=ranks)


def _run_suite(request: RunRequest, device: str) -> Path:
    """run_suite in the one process that publishes (the only one, or rank 0)."""
    reports = request.reports_root
    if request.checkpoint is not None and not request.checkpoint.is_file():
        raise BenchError(f"weights file not found: {request.checkpoint}")
    with no_empty_folders_left(reports):
        probe_writable(reports, "reports folder")
        return _run_held(request, device)


def _run_held(request: RunRequest, device: str) -> Path:
    """_run_suite once the reports folder is known writable: reserve or hold the run, run it."""
    suite, reports = request.suite, request.reports_root
    with claimed(reports, suite.name, request.resume) as claim:
        if RUN_ID_FILE in os.environ:  # the --nproc launcher names the run if a rank dies
            atomic_write_text(Path(os.environ[RUN_ID_FILE]), claim.run_id)
        _check_storage(request, claim.work)
        if request.resume and not has_checkpoint(claim.work):
            raise BenchError(
                f"nothing to resume: {claim.work} holds no checkpoint (the run stopped before "
                "its first epoch ended); start it again without --resume"
            )
        try:
            return _run_claimed(request, claim, device)
        except CheckpointWriteError as exc:
            hint = (
                f"; once that is fixed, continue with --resume {claim.run_id}"
                if exc.previous_epoch
                else ""
            )
            raise BenchError(f"{exc}{hint}") from None


def has_checkpoint(work: Path) -> bool:
    """Whether a run's work folder holds a training checkpoint that --resume continues."""
    return any(work.glob(f"*/{CHECKPOINT_NAME}"))


def _run_claimed(request: RunRequest, claim: Claim, device: str) -> Path:
    """The run itself, once its id is reserved and its work folder locked by this process."""
    run_id, work = claim.run_id, claim.work
    final = request.reports_root / run_id
    if final.exists():
        raise BenchError(f"{final} already holds a finished run; start a new one")
    try:
        with console.log_file(work / LOG_NAME):
            console.log(f"run {run_id}: {shlex.join(['resnest-bench', *request.argv[1:]])}")
            published, result = _run_steps(request, device, run_id, work, final)
    except (KeyboardInterrupt, Exception) as exc:
        hint = (
            f"run {run_id}'s checkpoints are in {work}; continue it with: "
            f"{resume_command(request.argv, run_id)}"
            if has_checkpoint(work)
            else None
        )
        if isinstance(exc, KeyboardInterrupt):  # SIGTERM or Ctrl-C: the CLI's one line says it
            raise as_stopped(exc, hint) from None
        if hint:
            console.log(f"run {run_id} stopped; {hint}")
        raise
    if not request.keep_checkpoints and not result.failed_steps:  # kept to retry a failed step
        discard(claim)
    _refuse_rejected_int8(result.deployment, published)
    _report_failures(result, published)
    return published


def _run_steps(
    request: RunRequest, device: str, run_id: str, work: Path, final: Path
) -> tuple[Path, RunResult]:
    """The steps of run_suite inside the staged run directory; returns it and the result,
    whose failed_steps (with reasons) cost no other step its results."""
    suite = request.suite
    environment = fingerprint(device=device)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    steps = set(suite.steps)
    # transfer loads its own data set
    dataset = load_data(request, suite.data.dataset) if steps - {"transfer"} else None
    trained: dict[str, tuple[models.ResNeSt, TrainingRun]] = {}
    transfer: TrainingRun | None = None
    deployment: Deployment | None = None
    with staged_dir(final) as stage:
        if "train" in steps and request.checkpoint is None:
            for name in suite.model.names:
                model = build_model(suite, name, dataset.num_classes)
                run = train_one(
                    request,
                    model,
                    dataset,
                    work / f"train-{name}",
                    stage_log=stage / f"epochs-{name}.jsonl",
                    device=device,
                )
                trained[name] = (model, run)
        best = max(trained, key=lambda n: trained[n][1].summary.best_test_top1 or 0.0, default=None)
        if "transfer" in steps:
            transfer = fine_tune(
                request, (best, trained[best][1]) if best else None, work, stage, device
            )
        runs = [run for _, run in trained.values()]
        if best and not steps & {"deploy", "export", "transfer"}:
            _keep_model(trained[best][0], dataset, stage)

        def result_with(deployment: Deployment | None, failed: dict[str, str]) -> RunResult:
            return RunResult(
                kind=_kind(suite),
                run_id=run_id,
                created=created,
                command=["resnest-bench", *request.argv[1:]],
                seed=suite.seed,
                environment=environment,
                config=run_config(request, device),
                training=Training(runs=runs, transfer=transfer) if runs or transfer else None,
                deployment=deployment,
                failed_steps=failed,
            )

        failed: dict[str, str] = {}
        if runs or transfer:  # on disk the moment training ends, whatever happens next
            write_result(work / TRAINING_RESULT_NAME, result_with(None, failed))
        if steps & {"deploy", "export"}:
            release_device_memory([model for model, _ in trained.values()])
            try:
                model, fed, source = model_to_deploy(
                    request, trained[best][0] if best else None, dataset
                )
                deployment = deploy_model(
                    request,
                    model,
                    fed,
                    stage / "artifacts",
                    device=device,
                    preprocessing_from=source,
                )
            except Exception as exc:
                if not (runs or transfer):
                    raise  # nothing else to publish: the error is the answer
                failed["deploy"] = one_line(exc)
                console.log(f"deploy failed ({failed['deploy']}); publishing the training results")
        result = result_with(deployment, failed)
        write_result(stage / RESULT_NAME, result)
        write_report(stage, result)
        console.log(f"run {run_id}: publishing {final}")
        shutil.copyfile(work / LOG_NAME, stage / LOG_NAME)  # the run's lines, resumes included
    return final, result


def _keep_model(model: models.ResNeSt, dataset: Dataset, stage: Path) -> None:
    """A train-only run publishes its best model (artifacts/model.pt, with its preprocessing):
    its work folder and checkpoints go when it finishes, and `export`/`infer --checkpoint`
    and the suites that reuse a model need one."""
    save_torch_artifact(model.cpu().eval(), stage / MODEL_FILE, dataset.preprocessing)
    console.log(f"model: artifacts/{MODEL_FILE.name} of the run (give it to --checkpoint)")


def _report_failures(result: RunResult, final: Path) -> None:
    """After the report is published: a step or target that failed ends the run with one line
    (exit 1) naming them; their reasons and every other figure are in the report."""
    targets = result.deployment.targets if result.deployment else []
    failed = [*result.failed_steps, *(t.target for t in targets if t.status == "failed")]
    if failed:
        raise PartlyFailed(
            f"{len(failed)} failed ({', '.join(failed)}); the reasons and every other figure "
            f"are in {final / 'report.md'}"
        )


def _refuse_rejected_int8(deployment: Deployment | None, final: Path) -> None:
    """After the report is published: an int8 model outside the limit, not allowed, ends the
    run with one line (exit 3) naming every rejected target, so that no script ships one
    unknowingly."""
    from resnest_bench.harness.report.verdict import rejected_int8_text

    rejected = rejected_int8_text(deployment) if deployment else None
    if rejected is not None:
        raise Int8Rejected(
            f"{rejected}; all figures are in {final / 'report.md'}; "
            "--allow-int8-loss ships them anyway"
        )
