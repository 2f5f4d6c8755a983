"""Nothing lost, ever: storage faults, concurrent runs, killed runs' debris, bad model files.

Faults are real where a test can make them (a read-only or tiny tmpfs when running as root,
a process killed with SIGKILL, a lock held by another process) and injected OSErrors with the
kernel's errno otherwise; every one must end in one `resnest-bench: error:` line, exit 2.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest
import torch

from resnest_bench.harness import checkpoints
from resnest_bench.harness.cli import main
from resnest_bench.harness.data import load_dataset
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.results import read_result
from resnest_bench.harness.store import atomic, runs
from resnest_bench.harness.store.atomic import staged_dir
from resnest_bench.harness.store.storage import check_free_space, os_error_message


def _train(reports: Path, data: Path, *extra: str, epochs: int = 1) -> list[str]:
    return [
        "--quiet",
        "train",
        "--model",
        "resnest-tiny",
        "--dataset",
        "synthetic",
        "--epochs",
        str(epochs),
        "-b",
        "32",
        "--train-subset",
        "64",
        "--test-subset",
        "32",
        "--reports",
        str(reports),
        "--data-dir",
        str(data),
        "--keep-checkpoints",  # these tests look at or resume from the checkpoints
        *extra,
    ]


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("resnest-bench: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- storage faults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EACCES, "permission denied: make it writable"),
        (errno.EROFS, "read-only file system: choose a folder on a writable"),
        (errno.ENOSPC, "no space left on device: free some space"),
        (errno.ENOENT, "no such file or folder"),
        (errno.EMFILE, "too many open files: raise the limit (ulimit -n"),
    ],
)
def test_os_errors_name_the_path_and_what_to_do(code, words) -> None:
    message = os_error_message(OSError(code, os.strerror(code), "/x/y"), "reports folder")
    assert message == f"reports folder /x/y: {words}" + message.split(words, 1)[1]


def _fail_under(monkeypatch, root: Path, code: int) -> None:
    """Every file created under `root` fails with `code`, as the kernel would say it."""
    real_open = os.open

    def failing(path, flags, *args, **kwargs):
        if str(path).startswith(str(root)) and flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", failing)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC, errno.EMFILE])
def test_unwritable_reports_folder_stops_before_any_work(tmp_path, monkeypatch, capsys, code):
    reports = tmp_path / "reports"
    _fail_under(monkeypatch, reports, code)
    assert main(_train(reports, tmp_path / "d")) == 2
    line = _one_error(capsys)
    assert f"reports folder {reports}" in line and os.strerror(code).lower()[:10] in line.lower()
    assert "done: data" not in capsys.readouterr().err  # stopped before loading data


def test_data_folder_probe_names_the_data_folder(tmp_path, monkeypatch) -> None:
    data = tmp_path / "data"
    _fail_under(monkeypatch, data, errno.EROFS)
    with pytest.raises(BenchError, match=r"data folder \(--data-dir.*read-only file system"):
        load_dataset("cifar10", root=data, download=True)  # stops before downloading


def test_free_space_check_names_both_sizes(tmp_path) -> None:
    check_free_space(tmp_path, 1, "reports folder")
    with pytest.raises(BenchError, match=r"MB free but this run needs about .* --reports"):
        check_free_space(tmp_path, 1 << 60, "reports folder")


def test_failed_write_names_its_file_and_keeps_the_old_one(tmp_path, monkeypatch) -> None:
    target = tmp_path / "checkpoint.pt"
    atomic.atomic_write_bytes(target, b"epoch 1")

    def full(_fd):  # the kernel's write/fsync errors carry no file name
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OSError) as info:
        atomic.atomic_write_bytes(target, b"epoch 2")
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"epoch 1" and list(tmp_path.iterdir()) == [target]


def test_disk_full_at_a_checkpoint_keeps_the_last_one_and_says_how_to_resume(
    tmp_path, monkeypatch, capsys
) -> None:
    """ENOSPC while writing epoch 2's checkpoint: one line naming the file, the epoch-1
    checkpoint intact, and `--resume RUN_ID` (printed) finishes the run once space is back."""
    real, calls = checkpoints.atomic_torch_save, []

    def full_at_second(obj, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(obj, path)

    reports = tmp_path / "r"
    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "atomic_torch_save", full_at_second)
        assert main(_train(reports, tmp_path / "d", epochs=2)) == 2
    line = _one_error(capsys)
    (run_id,) = [p.name for p in (reports / "work").iterdir()]
    assert f"could not write checkpoint of epoch 2: {calls[1]}: no space left on device" in line
    assert line.endswith(
        f"the checkpoint of epoch 1 is kept whole; once that is fixed, continue with "
        f"--resume {run_id}"
    )
    assert checkpoints.read_checkpoint(calls[0]).epoch == 1
    assert main([*_train(reports, tmp_path / "d", epochs=2), "--resume", run_id]) == 0
    (run,) = read_result(reports / run_id / "result.json").training.runs
    assert run.resumed_from_epoch == 1 and len(run.epochs) == 2


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (root only); yields a function mount(options) -> folder."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        folder = tmp_path / f"fs{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)])
        if done.returncode != 0:
            pytest.skip("mount -t tmpfs is not permitted here")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def test_real_read_only_and_full_file_systems(tmp_path, tmpfs, capsys) -> None:
    read_only = tmpfs("size=1m,ro")
    assert main(_train(read_only / "reports", tmp_path / "d")) == 2
    assert "read-only file system: choose a folder on a writable" in _one_error(capsys)
    tiny = tmpfs("size=256k")  # resnest-tiny needs ~4 MB: refused before training
    assert main(_train(tiny, tmp_path / "d")) == 2
    assert f"reports folder {tiny} has 0 MB free but this run needs about" in _one_error(capsys)
    assert list(tiny.iterdir()) == []


# --- run ids, locks, concurrent runs ------------------------------------------------------------


def test_runs_reserved_in_the_same_second_get_distinct_ids(tmp_path, monkeypatch) -> None:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 11, 23, 12, 0, 0, tzinfo=tz)

    monkeypatch.setattr(runs, "datetime", Frozen)
    claims: list[runs.Claim] = []
    threads = [
        threading.Thread(target=lambda: claims.append(runs.reserve(tmp_path, "x")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = sorted(c.run_id for c in claims)
    assert len(set(ids)) == 8 and ids[0] == "20261123-120000-x"
    for claim in claims:
        runs.release(claim)


def test_two_runs_started_together_both_complete(tmp_path) -> None:
    """Two processes, one reports folder, started at once: two run folders, two results."""
    reports, env = tmp_path / "r", {**os.environ, "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "resnest_bench.harness.cli"]
    procs = [
        subprocess.Popen([*command, *_train(reports, tmp_path / "d")], env=env) for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    finished = sorted(p for p in reports.iterdir() if p.name != "work")
    assert len(finished) == 2
    for run_dir in finished:
        assert read_result(run_dir / "result.json").run_id == run_dir.name
        assert (reports / "work" / run_dir.name / "train-resnest-tiny" / "checkpoint.pt").is_file()
    assert not list(reports.glob(".*"))


HOLDER = """
import sys, time
from pathlib import Path
from resnest_bench.harness.store import runs
claim = runs.hold(Path(sys.argv[1]), sys.argv[2])
print("held", flush=True)
time.sleep(120)
"""


def test_resume_of_a_run_held_by_a_live_process_is_refused(tmp_path, capsys) -> None:
    reports = tmp_path / "r"
    claim = runs.reserve(reports, "train")
    (claim.work / "train-resnest-tiny").mkdir()
    (claim.work / "train-resnest-tiny" / "checkpoint.pt").write_bytes(b"x")
    os.close(claim.fd)  # as if that process had died
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(reports), claim.run_id], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        assert main([*_train(reports, tmp_path / "d"), "--resume", claim.run_id]) == 2
        line = _one_error(capsys)
        assert f"run {claim.run_id} is in use by process {holder.pid} on " in line
    finally:
        holder.kill()
        holder.wait()
    assert runs.unlocked(claim.work)  # the kernel dropped the dead holder's lock


def test_refused_run_leaves_no_work_folder(tmp_path, capsys) -> None:
    reports = tmp_path / "r"
    assert main(_train(reports, tmp_path / "d", "-b", "100000")) == 2
    assert "batch size 100000 exceeds" in _one_error(capsys)
    assert not reports.exists()  # nor the reports folder this run would have created


# --- debris of killed runs ----------------------------------------------------------------------

KILLED_PUBLISH = """
import os, signal, sys
from pathlib import Path
from resnest_bench.harness.store.atomic import staged_dir
with staged_dir(Path(sys.argv[1])) as stage:
    (stage / ".result.json.abc.tmp").write_bytes(b"torn")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_publish_then_a_new_run_leaves_no_staging(tmp_path) -> None:
    reports = tmp_path / "r"
    reports.mkdir()
    killed = subprocess.run([sys.executable, "-c", KILLED_PUBLISH, str(reports / "20261123-x")])
    assert killed.returncode == -signal.SIGKILL
    (staging,) = reports.glob(".20261123-x.*.staging")
    torn = reports / "work" / "20261123-y" / "train-resnest-tiny" / ".checkpoint.pt.q1.tmp"
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"torn")
    with staged_dir(reports / "mine"):  # a live owner's staging folder is never touched
        live = next(reports.glob(".mine.*.staging"))
        assert main(_train(reports, tmp_path / "d")) == 0
        assert live.is_dir()
    assert not staging.exists() and not torn.exists()
    assert not list(reports.glob(".*.staging")) and not list(reports.rglob("*.tmp"))


def test_clean_lists_then_removes_only_what_no_one_needs(tmp_path, capsys) -> None:
    reports = tmp_path / "r"
    finished, killed, empty = (reports / "work" / n for n in ("a-done", "b-killed", "c-empty"))
    for work in (finished, killed):
        (work / "train-m").mkdir(parents=True)
        (work / "train-m" / "checkpoint.pt").write_bytes(b"w" * 1000)
    (reports / "a-done").mkdir()
    (reports / "a-done" / "result.json").write_text("{}")
    empty.mkdir()
    for work in (finished, killed, empty):
        (work / runs.MARKER_NAME).write_text(work.name)
    foreign = reports / "work" / "e-mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a run")
    subprocess.run([sys.executable, "-c", KILLED_PUBLISH, str(reports / "d-killed")])
    for path in (finished, killed, empty, foreign):
        os.utime(path, (0, 0))
    assert main(["clean", "--reports", str(reports)]) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and "dry run: 3 item(s)" in out
    assert f"kept         {killed}  (killed run: continue it with --resume b-killed" in out
    assert f"kept         {foreign}  (not made by a run (no marker): left alone" in out
    assert finished.exists() and empty.exists() and list(reports.glob(".*.staging"))
    assert main(["clean", "--reports", str(reports), "--apply"]) == 0
    assert "removed 3 item(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (reports / "work").iterdir()) == ["b-killed", "e-mine"]
    assert (foreign / "notes.txt").read_text() == "not a run"
    assert (reports / "a-done" / "result.json").exists() and not list(reports.glob(".*"))


# --- model files in our words -------------------------------------------------------------------


def _onnx_bytes() -> bytes:
    from onnx import TensorProto, helper

    io_ = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 32, 32]) for n in "xy"]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", io_[:1], io_[1:])
    return helper.make_model(graph, producer_name="pytorch").SerializeToString()


def test_foreign_and_damaged_checkpoints_are_explained_in_full(tmp_path, capsys) -> None:
    from resnest_bench import models

    good = tmp_path / "good.pt"
    torch.save(models.create_model("resnest-tiny", num_classes=10).state_dict(), good)
    files = {
        "random.pt": (os.urandom(4096), "it is not a PyTorch file"),
        "model.onnx": (_onnx_bytes(), "it is an ONNX model, which holds no PyTorch weights"),
        "renamed.pt": (_onnx_bytes(), "it is an ONNX model, which holds no PyTorch weights"),
        "truncated.pt": (
            good.read_bytes()[: good.stat().st_size // 2],
            "it looks like a PyTorch file but is damaged or cut short",
        ),
    }
    for name, (content, words) in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        argv = ["--quiet", "export", "--checkpoint", str(path), "--dataset", "synthetic"]
        assert main([*argv, "--reports", str(tmp_path / "r")]) == 2
        line = _one_error(capsys)
        assert f"cannot read weights file {path}: {words}" in line
        assert line.endswith("(expected a file written by torch.save, or a .safetensors file)")
    assert not (tmp_path / "r" / "work").exists()


def test_device_cuda_n_is_accepted_by_the_suite(capsys) -> None:
    from resnest_bench.harness.config import step_suite

    assert step_suite("train", {"device": "cuda:1"}).device == "cuda:1"
    assert main(["train", "--device", "cuda:1", "--model", "resnest-tiny"]) == 2
    line = _one_error(capsys)
    assert "device 'cuda:1'" in line  # no GPU here: needs one; one GPU: does not exist


def test_val_fraction_is_validated(capsys) -> None:
    assert main(["train", "--dataset", "folder", "--folder", ".", "--val-fraction", "1"]) == 2
    assert "data.val_fraction: Input should be less than 1" in _one_error(capsys)
