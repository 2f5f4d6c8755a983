"""Hostile input, third pass (issue 21): names that would escape the reports folder, resumes
of folders that are not runs, and cleanup that deletes only what a run marked as its own.
Every refusal is one `resnest-bench: error:` line and exit 2, and touches nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnest_bench import models
from resnest_bench.harness.checkpoints import read_model_file, save_torch_artifact
from resnest_bench.harness.cli import main
from resnest_bench.harness.data import cifar, load_dataset
from resnest_bench.harness.data.folder import load_folder
from resnest_bench.harness.data.types import Preprocessing
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.names import checked_name
from resnest_bench.harness.report.plots import plot_title
from resnest_bench.harness.report.run import render
from resnest_bench.harness.results import RunResult
from resnest_bench.harness.store import readfile, runs
from tests.test_data import RECORDS, _cifar10_files, cifar10_archive
from tests.test_markdown_escape import EXAMPLE
from tests.test_reliability import _one_error, _train
from tests.test_results import RUN, make_result


@pytest.mark.parametrize(
    "bad", ["../victim", "../../../victim", "/tmp/victim", "a/b", "..", ".hidden", "", "a\nb"]
)
def test_names_that_are_not_one_plain_component_are_refused(bad) -> None:
    with pytest.raises(BenchError, match=r"^run id .* must be a plain name \(letters, digits"):
        checked_name(bad, "run id")


@pytest.mark.parametrize("good", ["20261207-024203-all-runtimes", "gpu", "cpu-runtime.v2_1"])
def test_plain_names_pass_unchanged(good) -> None:
    assert checked_name(good, "run id") == good


@pytest.mark.parametrize("escape", ["../../../victim", "{victim}"])
def test_resume_outside_the_reports_folder_touches_nothing(tmp_path, capsys, escape) -> None:
    reports = tmp_path / "a" / "b" / "reports"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("years of work")
    run_id = escape.format(victim=victim)
    assert main([*_train(reports, tmp_path / "d"), "--resume", run_id]) == 2
    line = _one_error(capsys)
    assert line.startswith("resnest-bench: error: run id ") and "must be a plain name" in line
    assert sorted(p.name for p in victim.iterdir()) == ["thesis.txt"]
    assert (victim / "thesis.txt").read_text() == "years of work"


def test_resume_of_a_folder_the_harness_did_not_create_is_refused(tmp_path, capsys) -> None:
    reports = tmp_path / "r"
    foreign = reports / "work" / "my-notes"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("keep me")
    assert main([*_train(reports, tmp_path / "d"), "--resume", "my-notes"]) == 2
    line = _one_error(capsys)
    assert "refusing to resume" in line and "not a resnest-bench run folder" in line
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_resume_of_a_run_without_a_checkpoint_is_refused(tmp_path, capsys) -> None:
    reports = tmp_path / "r"
    claim = runs.reserve(reports, "train")
    os.close(claim.fd)  # killed before its first checkpoint
    assert main([*_train(reports, tmp_path / "d"), "--resume", claim.run_id]) == 2
    line = _one_error(capsys)
    assert f"nothing to resume: {claim.work} holds no checkpoint" in line
    assert not (reports / claim.run_id).exists()  # no fresh training was published


def test_cleanup_deletes_only_a_folder_marked_by_its_run(tmp_path) -> None:
    reports = tmp_path / "r"
    claim = runs.reserve(reports, "train")
    (claim.work / "checkpoint.pt").write_bytes(b"x")
    (claim.work / runs.MARKER_NAME).write_text("another-run\n")
    runs.discard(claim)
    assert (claim.work / "checkpoint.pt").is_file()
    (claim.work / runs.MARKER_NAME).write_text(f"{claim.run_id}\n")
    runs.discard(claim)
    assert not claim.work.exists()
    os.close(claim.fd)


@pytest.mark.parametrize(
    ("suite", "says"),
    [
        ("../gpu", "suite name '../gpu' must be a plain name"),
        ("x/../../gpu", "suite name 'x/../../gpu' must be a plain name"),
        ("/", "cannot read suite file /: [Errno 21] Is a directory"),
    ],
)
def test_suite_names_with_path_parts_are_refused_by_name(capsys, suite, says) -> None:
    assert main(["run", suite, "--quick"]) == 2
    assert _one_error(capsys).startswith(f"resnest-bench: error: {says}")


def test_a_suite_file_whose_name_is_a_path_is_refused(tmp_path, capsys) -> None:
    suite = tmp_path / "evil.toml"
    suite.write_text('name = "../../outside"\nsteps = ["train"]\n')
    assert main(["run", str(suite), "--reports", str(tmp_path / "r")]) == 2
    assert "name: must be a plain name" in _one_error(capsys)
    assert not (tmp_path / "outside").exists()


# --- hostile files: images, checkpoints, JSON, data sets (issue 21, items 4-8) ----------------


def _image_folder(root: Path, odd: Image.Image | None = None) -> Path:
    """Two classes of three 8x8 grey PNGs; `odd`, when given, is one more image of class a."""
    for name, value in (("a", 40), ("b", 200)):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), value).save(root / name / f"{i}.png")
    if odd is not None:
        odd.save(root / "a" / "odd.png")
    return root


def test_a_decompression_bomb_png_is_refused_in_one_line(tmp_path, capsys) -> None:
    folder = _image_folder(tmp_path / "imgs", Image.new("1", (20000, 20000)))
    assert (folder / "a" / "odd.png").stat().st_size < 100_000  # small file, 400 M pixels
    argv = ["--quiet", "train", "--model", "resnest-tiny", "--dataset", "folder"]
    argv += ["--folder", str(folder), "--reports", str(tmp_path / "r"), "--epochs", "1"]
    assert main(argv) == 2
    assert _one_error(capsys) == (
        f"resnest-bench: error: {folder / 'a' / 'odd.png'} has more pixels, over the "
        "89,478,485 Pillow decodes safely (a possible decompression bomb): shrink or remove it"
    )


def test_an_image_just_over_the_pixel_limit_is_refused_with_its_size(tmp_path) -> None:
    path = tmp_path / "big.png"
    Image.new("1", (10000, 9000)).save(path)
    with pytest.raises(BenchError, match=r"odd\.png has 10000x9000 pixels, over the 89,478,485"):
        load_folder(_image_folder(tmp_path / "f", Image.open(path)), **FOLDER)


def test_16_bit_png_keeps_its_grey_level(tmp_path) -> None:
    """32768 of 65535 is mid grey, 128 of 255 (Pillow's own conversion clipped it to 255)."""
    wide = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    assert wide.mode == "I;16"
    data = load_folder(_image_folder(tmp_path / "f", wide), **FOLDER)
    pixels = torch.cat([data.train.images, data.test.images])
    assert sorted(set(pixels.flatten().tolist())) == [40, 128, 200]


FOLDER = {"image_size": 8, "seed": 0, "val_fraction": 0.5}


def _rgb48_png(path: Path, rgb: tuple[int, int, int]) -> None:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    pixels = np.zeros((8, 8, 3), ">u2")
    pixels[...] = rgb
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 8, 8, 16, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_48_bit_rgb_png_keeps_its_colour(tmp_path) -> None:
    folder = _image_folder(tmp_path / "f")
    _rgb48_png(folder / "a" / "odd.png", (32768, 0, 65535))
    data = load_folder(folder, **FOLDER)
    images = torch.cat([data.train.images, data.test.images])
    colours = {tuple(image[:, 0, 0].tolist()) for image in images}
    assert colours == {(40, 40, 40), (200, 200, 200), (128, 0, 255)}


@pytest.mark.parametrize(
    ("mean", "std", "shown"),
    [
        ((float("nan"), 0.5, 0.5), (0.2, 0.2, 0.2), "mean [nan, 0.5, 0.5], std [0.2, 0.2, 0.2]"),
        ((0.5, 0.5, 0.5), (0.0, 0.2, 0.2), "mean [0.5, 0.5, 0.5], std [0.0, 0.2, 0.2]"),
        ((0.5, 0.5, 0.5), (-1.0, 0.2, 0.2), "mean [0.5, 0.5, 0.5], std [-1.0, 0.2, 0.2]"),
        ((0.5, 0.5, 0.5), (0.2, float("inf"), 0.2), "std [0.2, inf, 0.2]"),
    ],
)
def test_bad_stored_preprocessing_is_refused_in_one_line(tmp_path, capsys, mean, std, shown):
    path = tmp_path / "model.pt"
    model = models.create_model("resnest-tiny", num_classes=10)
    classes = tuple(str(i) for i in range(10))
    save_torch_artifact(model, path, Preprocessing(mean, std, 32, classes))
    argv = ["--quiet", "export", "--checkpoint", str(path), "--dataset", "synthetic"]
    assert main([*argv, "--reports", str(tmp_path / "r")]) == 2
    line = _one_error(capsys)
    assert line.startswith(f"resnest-bench: error: {path} carries preprocessing that cannot be")
    assert shown in line and line.endswith("the stds finite and > 0, the size > 0)")


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("command", ["report", "compare"])
def test_deeply_nested_json_is_one_line(tmp_path, capsys, command) -> None:
    path = tmp_path / "result.json"
    path.write_text('{"schema_version": 2, "kind": "train", "x": ' + _deep(100_000) + "}")
    assert main([command, str(path)]) == 2
    assert _one_error(capsys) == (
        f"resnest-bench: error: {path} nests its JSON too deeply to be a resnest-bench file"
    )


def test_a_sweep_record_nested_deeply_is_one_line(tmp_path, capsys) -> None:
    (tmp_path / "sweep.json").write_text(_deep(100_000))
    assert main(["report", str(tmp_path)]) == 2
    assert "nests its JSON too deeply" in _one_error(capsys)


def test_a_result_over_the_size_cap_is_not_read_whole(tmp_path, capsys) -> None:
    path = tmp_path / "result.json"
    with path.open("wb") as handle:
        handle.truncate(readfile.MAX_BYTES + 1)  # sparse: 64 MiB + 1 byte of zeros
    assert main(["report", str(path)]) == 2
    assert _one_error(capsys) == (
        f"resnest-bench: error: result file {path} is larger than 64 MiB: "
        "not a file resnest-bench wrote"
    )


def test_a_deeply_nested_suite_is_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(f'name = "x"\nsteps = ["train"]\nx = {_deep(100_000)}\n')
    assert main(["run", str(path)]) == 2
    assert _one_error(capsys) == (
        f"resnest-bench: error: {path} nests its tables or arrays too deeply for a suite"
    )


def test_a_cifar_batch_short_by_whole_records_is_refused(tmp_path, monkeypatch) -> None:
    files, _ = _cifar10_files()
    short = files["data_batch_3.bin"][: 10 * 3073]  # 10 of its 20 records: a valid size
    source = cifar10_archive(tmp_path, **{"data_batch_3.bin": short})
    official = dataclasses.replace(cifar.CIFAR_FORMATS["cifar10"], source=source)
    monkeypatch.setitem(cifar.CIFAR_FORMATS, "cifar10", official)
    monkeypatch.setattr(cifar, "OFFICIAL_IMAGES", {"train": 5 * RECORDS, "test": RECORDS})
    root = tmp_path / "cache"
    with pytest.raises(BenchError) as info:
        load_dataset("cifar10", root=root)
    batch = root / "cifar-10-batches-bin" / "data_batch_3.bin"
    assert str(info.value) == (
        f"{batch} holds 10 images, expected 20: delete it and run again to restore it"
    )


def test_a_corrupt_archive_under_no_download_says_how_to_replace_it(tmp_path) -> None:
    source = cifar10_archive(tmp_path)
    root = tmp_path / "cache"
    root.mkdir()
    (root / "cifar-10-binary.tar.gz").write_bytes(b"half a download")
    with pytest.raises(BenchError) as info:
        load_dataset("cifar10", root=root, archive=source, download=False)
    assert str(info.value).endswith(
        f"and was deleted: downloading is off: download {source.url} into {root} again by hand"
    )


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (("config", "settings", "model"), "config.settings: settings.model must be a table, got"),
        (
            ("deployment", "config", "int8_max_drop"),
            "deployment.config: config.int8_max_drop must be a number, got",
        ),
    ],
)
def test_free_form_parts_a_report_reads_are_checked_on_load(tmp_path, capsys, edit, says):
    """Found by tests/test_fuzz.py: a string where a report reads a table or a number."""
    result = json.loads((EXAMPLE / "result.json").read_text())
    result[edit[0]][edit[1]][edit[2]] = ""
    (tmp_path / "result.json").write_text(json.dumps(result))
    assert main(["report", str(tmp_path)]) == 2
    line = _one_error(capsys)
    assert line.startswith(f"resnest-bench: error: {tmp_path / 'result.json'}: {says} ")
    assert not (tmp_path / "report.md").exists()


class _RunsCode:
    """Unpickled, it would create the file `proof`."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self):
        return (os.system, (f"touch {self.proof}",))


@pytest.mark.parametrize("zipped", [True, False])
def test_a_pickle_that_would_run_code_is_refused_as_unsafe(tmp_path, capsys, zipped) -> None:
    path, proof = tmp_path / "evil.pt", tmp_path / "code-ran"
    payload = {"weights": _RunsCode(proof)}
    if zipped:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))
    argv = ["--quiet", "export", "--checkpoint", str(path), "--dataset", "synthetic"]
    assert main([*argv, "--reports", str(tmp_path / "r")]) == 2
    assert _one_error(capsys) == (
        f"resnest-bench: error: cannot read weights file {path}: refused as unsafe: loading it "
        "would call posix.system, code rather than weights (nothing in it was run)"
    )
    assert not proof.exists()


def test_an_error_outside_quick_is_not_blamed_on_quick(tmp_path, capsys) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\nsteps = ["train"]\n[train]\nlr = -1\n[quick.train]\nepochs = 1\n')
    assert main(["run", str(path)]) == 2
    assert (
        _one_error(capsys)
        == f"resnest-bench: error: {path}: train.lr: Input should be greater than 0, got -1"
    )
    path.write_text('name = "s"\nsteps = ["train"]\n[quick.train]\nepochs = 0\n')
    assert main(["run", str(path)]) == 2
    assert _one_error(capsys).startswith(f"resnest-bench: error: {path} [quick]: train.epochs: ")


def test_a_refused_run_removes_only_the_folders_it_created(tmp_path, capsys) -> None:
    created, existing = tmp_path / "new" / "deeper" / "reports", tmp_path / "mine"
    existing.mkdir()
    for reports in (created, existing):
        assert main(_train(reports, tmp_path / "d", "-b", "100000")) == 2
        assert "batch size 100000 exceeds" in _one_error(capsys)
    assert not (tmp_path / "new").exists()
    assert existing.is_dir() and list(existing.iterdir()) == []


def test_a_train_only_report_names_the_trained_stem_and_no_threads() -> None:
    settings = {"model": {"names": ["resnest-tiny"], "stem": None}, "data": {"dataset": "cifar10"}}
    result = RunResult.model_validate(
        make_result(
            training={"runs": [RUN], "transfer": None},
            config={"suite": "tiny", "settings": settings},
        )
    )
    text = render(result, [])
    assert text.splitlines()[2] == (
        "Model resnest-tiny, cifar stem; data set cifar10 (SYNTHETIC); run `r1`."
    )
    assert "None stem" not in text and "threads per runtime" not in text
    assert plot_title(result, "Test top-1") == (
        "Test top-1 (SYNTHETIC data)\nresnest-tiny, cifar stem, cifar10"
    )


def test_a_train_only_run_publishes_its_model_for_export(tmp_path, capsys) -> None:
    reports = tmp_path / "r"
    argv = [a for a in _train(reports, tmp_path / "d") if a != "--keep-checkpoints"]
    assert main(argv) == 0
    (run_dir,) = [p for p in reports.iterdir() if p.name != "work"]
    assert not (reports / "work").exists()  # the checkpoints went, as before
    model, pre = read_model_file(
        run_dir / "artifacts" / "model.pt", fallback=lambda: None, num_classes=10
    )
    assert model.config.name == "resnest-tiny" and pre is not None
    assert pre.image_size == 32 and len(pre.classes) == 10
    assert (
        "model: artifacts/model.pt of the run (give it to --checkpoint)" in capsys.readouterr().err
    )
