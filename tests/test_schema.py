"""Result schema: spec language errors name the JSON path; files round-trip; foreign and
newer files are refused with a clear message."""

from __future__ import annotations

import json

import pytest

from resnest_bench.harness import schema
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.schema import (
    SCHEMA_VERSION,
    IsoTime,
    MapOf,
    Nullable,
    OneOf,
    Optional,
    Record,
    read_result,
    validate,
    write_result,
)


def make_result(**overrides):
    result = {
        "schema_version": SCHEMA_VERSION,
        "kind": "train",
        "run_id": "r1",
        "created": "2025-01-02T03:04:05+00:00",
        "command": ["resnest-bench", "train"],
        "seed": 0,
        "environment": {"python": {}, "cpu": {}, "versions": {}, "extra": 1},
        "config": {"model": "resnest-tiny"},
        "training": {"runs": [], "transfer": None},
    }
    result.update(overrides)
    return result


def error_of(obj, spec):
    with pytest.raises(BenchError) as info:
        validate(obj, spec, name="result.json")
    return str(info.value)


EPOCHS = {"training": {"epochs": [{"train_loss": float, "acc": Nullable(float)}]}}


def test_error_names_the_json_path():
    obj = {"training": {"epochs": [{"train_loss": 1.0, "acc": None}] * 3 + [{"train_loss": "x"}]}}
    assert error_of(obj, EPOCHS) == (
        "result.json: training.epochs[3].train_loss: expected number, got str"
    )


@pytest.mark.parametrize(
    ("obj", "spec", "message"),
    [
        ([], {"a": int}, "(top level): expected object, got list"),
        ({}, {"a": int}, "(top level): missing required key 'a'"),
        ({"a": 1, "b": 2}, {"a": int}, "(top level): unexpected key 'b'"),
        ({"a": True}, {"a": int}, "a: expected int, got bool"),
        ({"a": 1.5}, {"a": int}, "a: expected int, got number"),
        ({"a": True}, {"a": float}, "a: expected number, got bool"),
        ({"a": None}, {"a": str}, "a: expected str, got null"),
        ({"a": 1}, {"a": bool}, "a: expected bool, got int"),
        ({"a": "z"}, {"a": OneOf("x", "y")}, "a: expected one of ['x', 'y'], got 'z'"),
        ({"a": {"k": [1, "2"]}}, {"a": MapOf([int])}, "a.k[1]: expected int, got str"),
        ({"t": "yesterday"}, {"t": IsoTime}, "t: expected ISO-8601 date-time string, got str"),
        ({"t": "2025-01-02"}, {"t": IsoTime}, "t: expected ISO-8601 date-time string, got str"),
        ({"a": 1}, {"a": Optional(str)}, "a: expected str, got int"),
        ({"a": 3}, {"a": list}, "a: expected list, got int"),
        ({"a": [], "b": 2}, Record({"a": dict}, extra=True), "a: expected object, got list"),
    ],
)
def test_spec_errors(obj, spec, message):
    assert error_of(obj, spec) == f"result.json: {message}"


def test_valid_values_pass():
    spec = {
        "n": int,
        "x": float,
        "s": str,
        "b": bool,
        "maybe": Nullable(int),
        "opt": Optional(int),
        "t": IsoTime,
        "kind": OneOf("a", "b"),
        "per": MapOf({"ms": float}),
        "rows": [{"v": float}],
        "loose": Record({"need": int}, extra=True),
    }
    obj = {
        "n": 1,
        "x": 2,  # an int is a JSON number
        "s": "",
        "b": False,
        "maybe": None,
        "t": "2025-01-02T03:04:05Z",
        "kind": "b",
        "per": {"cpu": {"ms": 1.5}, "cuda": {"ms": 0.1}},
        "rows": [],
        "loose": {"need": 1, "other": "ok"},
    }
    validate(obj, spec)


def test_bad_spec_is_a_programming_error():
    with pytest.raises(TypeError):
        validate(1, object())
    with pytest.raises(TypeError):
        validate([1], [int, str])


def test_round_trip(tmp_path):
    path = tmp_path / "result.json"
    result = make_result()
    write_result(path, result)
    assert read_result(path) == result
    assert list(json.loads(path.read_text())) == list(result)  # key order kept


def test_write_refuses_invalid_and_leaves_nothing(tmp_path):
    path = tmp_path / "result.json"
    with pytest.raises(BenchError, match=r"result\.json: kind: expected one of"):
        write_result(path, make_result(kind="bake"))
    with pytest.raises(BenchError, match="environment: missing required key 'versions'"):
        write_result(path, make_result(environment={"python": {}, "cpu": {}}))
    with pytest.raises(BenchError, match="unexpected key 'trainig'"):
        write_result(path, make_result(trainig={}))
    assert list(tmp_path.iterdir()) == []


def test_sections_are_optional_and_registrable(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    base = make_result()
    del base["training"]
    write_result(path, base)
    monkeypatch.setitem(schema.SECTION_SPECS, "training", {"epochs": [{"train_loss": float}]})
    bad = make_result(training={"epochs": [{"train_loss": "high"}]})
    with pytest.raises(BenchError, match=r"training\.epochs\[0\]\.train_loss: expected number"):
        write_result(tmp_path / "other.json", bad)


def test_read_missing_not_json_not_ours(tmp_path):
    with pytest.raises(BenchError, match="result file not found"):
        read_result(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BenchError, match="is not valid JSON"):
        read_result(bad)
    for foreign in ([1, 2], {"kind": "train"}, {"schema_version": 1}, {"schema_version": "1"}):
        other = tmp_path / "other.json"
        other.write_text(json.dumps(foreign))
        with pytest.raises(BenchError, match="is not a resnest-bench result"):
            read_result(other)


def test_read_newer_version_says_upgrade(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(make_result(schema_version=SCHEMA_VERSION + 2)))
    with pytest.raises(BenchError) as info:
        read_result(path)
    assert str(info.value) == (
        f"result.json has schema_version {SCHEMA_VERSION + 2}; "
        f"this resnest-bench reads up to {SCHEMA_VERSION}: upgrade resnest-bench"
    )


def test_read_validates_content(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(make_result(seed="zero")))
    with pytest.raises(BenchError, match="seed: expected int, got str"):
        read_result(path)
