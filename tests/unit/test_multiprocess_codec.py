"""State files: JSON header + raw numpy bytes; old JSON files still read; hostile bytes refused."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from modelmon.exporters.multiprocess import codec


def _state() -> dict[str, object]:
    rng = np.random.default_rng(7)
    return {
        "f8": rng.normal(size=(3, 5)),
        "i8": np.arange(-4, 9, dtype=np.int64),
        "u1": np.array([0, 255, 7], dtype=np.uint8),
        "b": np.array([True, False]),
        "empty": np.zeros((0, 4)),
        "scalar": np.float64(2.5),
        "strided": np.arange(20.0)[::3],
        "nested": [{"x": np.array([1.5, np.inf, -0.0])}, (1, "a", None, True)],
        "text": "caf\u00e9",
    }


def _check_same(a: object, b: object) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
        assert b.flags.writeable
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _check_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _check_same(x, y)
    elif isinstance(a, np.generic):
        assert a.item() == b
    else:
        assert a == b


def test_binary_round_trip_keeps_every_array_bit_for_bit() -> None:
    state = _state()
    data = codec.encode(state)
    assert data.startswith(codec.MAGIC)
    _check_same(state, codec.decode(data))


def test_older_all_json_files_still_read() -> None:
    state = _state()
    data = codec.encode_json(state)
    json.loads(data)  # plain JSON
    _check_same(state, codec.decode(data))


def test_arrays_are_not_base64_in_the_binary_form() -> None:
    big = {"a": np.random.default_rng(1).normal(size=50_000)}
    binary, legacy = codec.encode(big), codec.encode_json(big)
    assert len(binary) < 0.8 * len(legacy)
    assert len(binary) < big["a"].nbytes + 200


def _with_header(header: object, tail: bytes = b"") -> bytes:
    head = json.dumps(header).encode()
    head += b" " * (-(len(codec.MAGIC) + 8 + len(head)) % 8)
    return codec.MAGIC + struct.pack("<Q", len(head)) + head + tail


@pytest.mark.parametrize(
    "data",
    [
        codec.MAGIC + b"\x01",  # truncated length
        codec.MAGIC + struct.pack("<Q", 1 << 40) + b"{}",  # header longer than the file
        _with_header({"a": {"__nb__": ["<f8", [4], 0]}}, b"\0" * 16),  # array past the end
        _with_header({"a": {"__nb__": ["<f8", [1], 3]}}, b"\0" * 16),  # misaligned
        _with_header({"a": {"__nb__": ["<f8", [1], -8]}}, b"\0" * 16),  # negative offset
        _with_header({"a": {"__nb__": ["<f8", [-1], 0]}}, b"\0" * 16),  # negative shape
        _with_header({"a": {"__nb__": ["|O", [1], 0]}}, b"\0" * 16),  # object dtype
        _with_header({"a": {"__nb__": ["<f8", [1 << 40], 0]}}, b"\0" * 16),  # huge shape
        b'{"x":{"__nd__":["|O",[1],"AAAAAAAAAAA="]}}',  # legacy form, object dtype
    ],
)
def test_hostile_bytes_raise_value_errors_without_allocating(data: bytes) -> None:
    with pytest.raises(ValueError):
        codec.decode(data)


def test_is_empty_tells_a_state_that_recorded_nothing() -> None:
    traffic = {"kind": "traffic", "config": {}, "state": {"requests": 0, "aborted": {}}}
    drift = {"kind": "drift", "config": {}, "state": {"cum_features": np.zeros(3)}}
    doc = {"monitors": [{"aggregates": {"traffic": traffic, "drift": drift}, "live": []}]}
    assert codec.is_empty(doc)
    traffic["state"] = {"requests": 1, "aborted": {}}
    assert not codec.is_empty(doc)
    traffic["state"] = {"requests": 0, "aborted": {}}
    doc["monitors"][0]["live"] = [["requests_aborted", [[{}, 2.0]]]]  # type: ignore[index]
    assert not codec.is_empty(doc)
    doc["monitors"][0]["live"] = []  # type: ignore[index]
    doc["http"] = [{"counts": np.array([0, 3])}]
    assert not codec.is_empty(doc)


@pytest.mark.parametrize(
    ("values", "stored_bytes"),
    [
        (np.arange(1000, dtype=np.int64) % 200, 1),  # small counts: one byte each
        (np.arange(1000, dtype=np.int64) - 500, 2),  # signed, beyond one byte
        (np.arange(1000, dtype=np.int64) * 10_000_000, 8),  # needs all 64 bits
        (np.arange(1000, dtype=np.uint32) * 70, 4),  # already as narrow as it gets
    ],
)
def test_integer_arrays_are_stored_narrow_and_read_back_exactly(
    values: np.ndarray, stored_bytes: int
) -> None:
    data = codec.encode({"counts": values})
    back = codec.decode(data)["counts"]
    assert back.dtype == values.dtype and np.array_equal(back, values)
    assert values.size * stored_bytes <= len(data) < values.size * stored_bytes + 200


@pytest.mark.parametrize("stored", ["<i8", "<f4", "|O"])
def test_a_stored_type_wider_than_or_unlike_the_array_is_refused(stored: str) -> None:
    data = _with_header({"a": {"__nb__": ["<i4", [2], 0, stored]}}, b"\0" * 16)
    with pytest.raises(ValueError):
        codec.decode(data)
