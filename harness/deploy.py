"""The deployment stage: build every artifact of a trained model, then measure each runtime on it.

    deployment = run_deploy(model, dataset, out_dir, suite.deploy, small_subset=50)

Building (harness.export) writes and checks the files; measuring (harness.measure) times each
target in its own process. The files are published into `out_dir` only if everything succeeds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from resnest_bench.harness.config import DeploySection
from resnest_bench.harness.data import Dataset
from resnest_bench.harness.export import build_artifacts
from resnest_bench.harness.host.cgroups import cgroup_limits, usable_cpus
from resnest_bench.harness.host.envinfo import cpu_info
from resnest_bench.harness.host.peak import cpu_peak, with_shares
from resnest_bench.harness.measure import demo, measure_artifacts, select_targets, threads
from resnest_bench.harness.results.deployment import DeployEnvironment, Deployment, ThreadPolicy
from resnest_bench.harness.store.atomic import staged_dir


def run_deploy(
    model: nn.Module,
    dataset: Dataset,
    out_dir: str | Path,
    section: DeploySection,
    *,
    small_subset: int,
    measure: bool = True,
    step: Callable[[str, int, int], None] = lambda *_: None,
    device: str = "cpu",
) -> Deployment:
    """Build artifacts into `out_dir` and measure them; measure=False builds and checks the
    artifacts only (the `export` step). `small_subset`: the first N test images get their own
    top-1 and time per image (the seed's 50-image set); step(description, done, total) names each
    measuring step as it starts (progress). `device`: the suite's (resolved, "cpu" or
    "cuda:N"); PyTorch targets run there and ONNX Runtime's GPU providers on that GPU."""
    select_targets(section.runtimes)  # fail on unavailable runtimes before the slow part
    # One thread count for everything: the export's parity check and the int8 gate run with the
    # threads the timed targets get, so their figures come from the same kernels.
    count = threads.thread_count(section.threads)
    with staged_dir(Path(out_dir)) as stage:
        artifacts = build_artifacts(model, dataset, stage, section, step, threads=count)
        if not measure:
            return Deployment(
                config=section.model_dump(mode="json"),
                environment=environment(count),
                artifacts=artifacts,
                targets=[],
                demo=demo(dataset, {}),
            )
        # the idle-thread policy looks at the host just before timing, not before the export
        policy = threads.choose(section.threads, section.spinning)
        targets, shown, host = measure_artifacts(
            stage,
            artifacts,
            dataset,
            section,
            policy,
            small_subset=small_subset,
            step=step,
            device=device,
        )
        check = None
        if section.crosscheck:
            from resnest_bench.harness.crosscheck.stage import run_crosscheck

            shape = tuple(dataset.test.images.shape[1:])
            check = run_crosscheck(
                stage, artifacts.files, targets, shape, policy, section, step=step
            )
    from resnest_bench.models.profile import count_macs

    macs = count_macs(model, int(dataset.test.images.shape[-1]))
    env = environment(policy.threads, policy)
    return Deployment(
        config=section.model_dump(mode="json"),
        environment=env,
        artifacts=artifacts,
        targets=with_shares(targets, macs, env.cpu_peak),
        demo=shown,
        rounds=section.rounds,
        host=host,
        crosscheck=check,
        macs=macs,
    )


def environment(threads: int, policy: ThreadPolicy | None = None) -> DeployEnvironment:
    """Threads and limits in force: the context every number above depends on; the idle-thread
    policy where targets were timed."""
    import onnxruntime
    import torch

    limits = cgroup_limits()
    usable = usable_cpus(limits)
    return DeployEnvironment(
        usable_cpus=usable,
        threads=threads,
        cgroup=limits,
        torch=torch.__version__,
        onnxruntime=onnxruntime.__version__,
        providers=onnxruntime.get_available_providers(),
        thread_policy=policy,
        cpu_peak=cpu_peak(cpu_info(), min(threads, usable)),
    )
