"""Fuzzing the three readers of user files (issue 21): a suite TOML, a result.json and an image
folder. Every input either loads or ends in the project's one-line error (BenchError); no
other exception, no traceback. A result that loads must also render into report.md and
compare.md. Bounded: a fixed seed and a few dozen examples each, so the test is fast and the
same on every run.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from resnest_bench.harness.config import SUITES_DIR, load_suite
from resnest_bench.harness.data.folder import load_folder
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.report.compare import render_comparison
from resnest_bench.harness.report.run import render
from resnest_bench.harness.results import read_result

BOUNDED = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXAMPLE = Path(__file__).parent.parent / "reports" / "examples" / "all-runtimes-digits-zen5"
SUITE_LINES = (SUITES_DIR / "gpu.toml").read_text().splitlines()

HOSTILE_TOML = st.sampled_from(
    [
        "nan", "inf", "-inf", "-1", "0", "1e999", "99999999999999999999999", '"../x"', '"a/b"',
        '"<script>"', "[]", "{}", '"\\u0000"', "true", '""', '"' + "x" * 300 + '"',
        "[[[[[[[[1]]]]]]]]", '{ a = { b = { c = 1 } } }', "'''\nmulti\n'''", "2024-01-01",
    ]
)  # fmt: skip


def _loads_or_one_line(read: Any, *args: Any, **kwargs: Any) -> Any:
    """read(...) or None when it refused with BenchError; any other exception fails the test."""
    try:
        return read(*args, **kwargs)
    except BenchError as exc:
        assert "\n" not in str(exc), str(exc)
        return None


@BOUNDED
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(SUITE_LINES) - 1), HOSTILE_TOML | st.text(max_size=20)),
        max_size=4,
    ),
    quick=st.booleans(),
)
def test_suite_toml_loads_or_is_one_line(edits: list[tuple[int, str]], quick: bool) -> None:
    lines = list(SUITE_LINES)
    for index, value in edits:  # the value of a `key = value` line, or the whole line
        key, sep, _ = lines[index].partition("=")
        lines[index] = f"{key}= {value}" if sep else value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "suite.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _loads_or_one_line(load_suite, str(path), quick=quick)


@BOUNDED
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_as_a_suite_are_one_line_at_worst(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "suite.toml"
        path.write_bytes(content)
        _loads_or_one_line(load_suite, str(path))


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
RESULT = json.loads((EXAMPLE / "result.json").read_text())


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a JSON value, so an edit can land anywhere in the result."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


RESULT_PATHS = _paths(RESULT)[1:]


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = document.copy() if isinstance(document, (dict, list)) else document
    copy[path[0]] = _replace(copy[path[0]], path[1:], value)
    return copy


@BOUNDED
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(RESULT_PATHS), st.text(max_size=30) | JSON),
        min_size=1,
        max_size=3,
    )
)
def test_result_json_loads_and_renders_or_is_one_line(edits: list[tuple[Any, Any]]) -> None:
    document = RESULT
    for path, value in edits:
        try:
            document = _replace(document, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier edit replaced its parent
            continue
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "result.json"
        path.write_text(json.dumps(document))
        result = _loads_or_one_line(read_result, path)
    if result is not None:
        assert render(result, []).startswith("# resnest-bench ")
        assert render_comparison([result], seed_reference=True).startswith("# resnest-bench ")


def _png(mode: str, width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if mode == "I;16" else np.uint8
    bands = {"RGB": 3, "RGBA": 4, "LA": 2}.get(mode)
    shape = (height, width, bands) if bands else (height, width)
    pixels = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    image = Image.fromarray(pixels > 127 if mode == "1" else pixels)
    if mode == "P":
        image = image.convert("P")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


PNG = st.builds(
    _png,
    st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]),
    st.integers(1, 12),
    st.integers(1, 12),
    st.integers(0, 9),
)
BROKEN = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda png, cut: png[:cut], st.just(_png("RGB", 6, 6, 0)), st.integers(0, 200)),
)
# four in five files a valid image of some mode, so folders load about as often as not
IMAGE_FILE = st.integers(0, 4).flatmap(lambda pick: BROKEN if pick == 0 else PNG)


@BOUNDED
@given(st.lists(st.lists(IMAGE_FILE, min_size=2, max_size=4), min_size=2, max_size=3))
def test_image_folder_loads_or_is_one_line(classes: list[list[bytes]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for index, files in enumerate(classes):
            (root / f"class{index}").mkdir()
            for n, content in enumerate(files):
                (root / f"class{index}" / f"{n}.png").write_bytes(content)
        data = _loads_or_one_line(load_folder, root, image_size=8, seed=0, val_fraction=0.5)
    if data is not None:
        assert data.train.images.shape[1:] == (3, 8, 8) and len(data.classes) == len(classes)
        assert not math.isnan(float(data.train.images.float().mean()))
