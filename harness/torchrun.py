"""`--nproc N`: the same command again as N ranks on this host, through torchrun's own launcher.

Equivalent to `torchrun --standalone --nproc-per-node N -m resnest_bench.harness.cli ARGS`
(the ranks ignore --nproc: torchrun's RANK/WORLD_SIZE are set). Several nodes: call torchrun
yourself with its rendezvous flags (docs/distributed.md). A failed rank ends the
launch with one line naming the ranks and exit codes; torchrun has stopped the others.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path

from resnest_bench.harness.errors import BenchError


def cpu_threads(nproc: int) -> int:
    """Intra-op threads per rank: the usable CPUs shared out, so N ranks never oversubscribe."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (usable or 1) // nproc)


def launch(nproc: int, argv: Sequence[str], *, threads: int | None = None) -> None:
    """Run `resnest-bench ARGV` as `nproc` ranks on this host; BenchError when any rank failed.
    CPU threads per rank: `threads`, else $OMP_NUM_THREADS, else the usable CPUs shared out."""
    if nproc < 1:
        raise BenchError(f"--nproc must be >= 1, got {nproc}")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "-m", "resnest_bench.harness.cli"]
    )
    # set after parsing: torchrun's parser would take the ranks' --nproc for its own flag
    args.training_script_args = list(argv)
    for name in list(logging.root.manager.loggerDict):  # its per-rank lines: ours says it all
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    from resnest_bench.harness.pipeline import RUN_ID_FILE, resume_command

    given = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads or given or cpu_threads(nproc))  # ranks inherit
    run_id_file = Path(tempfile.mkdtemp(prefix="resnest-bench-launch.")) / "run_id"
    os.environ[RUN_ID_FILE] = str(run_id_file)
    try:
        run(args)
    except ChildFailedError as exc:
        # ranks torchrun itself stopped (SIGTERM) are not the cause; name the others
        failures = sorted(exc.failures.items())
        causes = [(r, f) for r, f in failures if f.exitcode != -signal.SIGTERM] or failures
        failed = ", ".join(f"rank {rank} ({_how(fail.exitcode)})" for rank, fail in causes)
        # rank 0 may be stopped before it can say how to resume: the launcher says it
        resume = ""
        if run_id_file.is_file():
            command = resume_command(["resnest-bench", *argv], run_id_file.read_text())
            resume = f"; continue it with: {command}"
        raise BenchError(
            f"{failed} of {nproc} ranks failed; torchrun stopped the others and nothing more "
            f"was published (a rank's own error, if it printed one, is above){resume}"
        ) from None
    finally:
        del os.environ[RUN_ID_FILE]
        shutil.rmtree(run_id_file.parent, ignore_errors=True)
        if given is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = given


def _how(exitcode: int) -> str:
    if exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
