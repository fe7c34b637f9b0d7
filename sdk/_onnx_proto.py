"""A minimal reader of ONNX ``ModelProto`` bytes: just what evaluating a classifier needs.

The SDK cannot depend on the ``onnx`` package (no wheel on every phone), so this decodes the
protobuf wire format directly. It reads opset imports, ``metadata_props``, and the graph's
nodes (with FLOAT, INT, STRING, TENSOR, FLOATS, INTS and STRINGS attributes), initializers,
inputs and outputs; every other field is skipped. Field numbers are those of ``onnx.proto``.

Bytes come from a model bundle, so they are treated as hostile: the reader never recurses
deeper than the fixed message nesting, checks every length against the buffer before using
it, and turns any malformation into :class:`~edgepersona.sdk.errors.ModelError`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import ModelError

__all__ = ["MAX_MODEL_BYTES", "Node", "ParsedModel", "ValueInfo", "parse_model"]

MAX_MODEL_BYTES = 16 * 1024 * 1024  # a persona model is a few KB; anything this big is wrong
_MAX_DIMS = 8

AttributeValue = (
    float | int | str | np.ndarray | tuple[float, ...] | tuple[int, ...] | tuple[str, ...]
)

# TensorProto.DataType -> (numpy dtype, repeated field that holds it when not in raw_data)
_FLOAT_DATA, _INT32_DATA, _STRING_DATA, _INT64_DATA, _DOUBLE_DATA, _UINT64_DATA = 4, 5, 6, 7, 10, 11
_TENSOR_TYPES: dict[int, tuple[np.dtype, int]] = {
    1: (np.dtype("<f4"), _FLOAT_DATA),
    2: (np.dtype("u1"), _INT32_DATA),
    3: (np.dtype("i1"), _INT32_DATA),
    4: (np.dtype("<u2"), _INT32_DATA),
    5: (np.dtype("<i2"), _INT32_DATA),
    6: (np.dtype("<i4"), _INT32_DATA),
    7: (np.dtype("<i8"), _INT64_DATA),
    8: (np.dtype(object), _STRING_DATA),
    9: (np.dtype("?"), _INT32_DATA),
    10: (np.dtype("<f2"), _INT32_DATA),  # int32_data holds the 16-bit patterns
    11: (np.dtype("<f8"), _DOUBLE_DATA),
    12: (np.dtype("<u4"), _UINT64_DATA),
    13: (np.dtype("<u8"), _UINT64_DATA),
}
_ATTRIBUTE_TYPES = {
    1: "FLOAT",
    2: "INT",
    3: "STRING",
    4: "TENSOR",
    6: "FLOATS",
    7: "INTS",
    8: "STRINGS",
}
_ATTRIBUTE_FIELD_TYPES = {2: 1, 3: 2, 4: 3, 5: 4, 7: 6, 8: 7, 9: 8}  # field number -> type


@dataclass(frozen=True)
class Node:
    """One graph node; ``attributes`` maps names to decoded values (lists become tuples)."""

    op_type: str
    domain: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, AttributeValue]


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output: ``elem_type`` is a TensorProto.DataType (0 when not a tensor);
    ``shape`` has ``None`` for a symbolic dimension, and is ``None`` when no shape is given."""

    name: str
    elem_type: int
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class ParsedModel:
    """The parts of a ``ModelProto`` that evaluation needs."""

    opsets: dict[str, int]
    metadata: dict[str, str]
    nodes: tuple[Node, ...]
    initializers: dict[str, np.ndarray]
    inputs: tuple[ValueInfo, ...]
    outputs: tuple[ValueInfo, ...]

    def opset(self, domain: str) -> int:
        """The imported version of ``domain`` (``""`` and ``"ai.onnx"`` are the same), or 0."""
        return self.opsets.get("" if domain == "ai.onnx" else domain, 0)


def parse_model(data: bytes) -> ParsedModel:
    """Decode a serialized ONNX model.

    Raises:
        ModelError: ``data`` is empty, too large, truncated, or not an ONNX model this
            reader understands (external tensor data, unknown tensor types...).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ModelError(f"expected the ONNX model as bytes, got {type(data).__name__}")
    buf = bytes(data)
    if not buf:
        raise ModelError("the ONNX model is empty (0 bytes)")
    if len(buf) > MAX_MODEL_BYTES:
        raise ModelError(
            f"the ONNX model is {len(buf):,} bytes; at most {MAX_MODEL_BYTES:,} are accepted"
        )
    opsets: dict[str, int] = {}
    metadata: dict[str, str] = {}
    graph: tuple[int, int] | None = None
    for number, wire, a, b in _fields(buf, 0, len(buf)):
        if number == 8 and wire == 2:
            domain, version = _opset(buf, a, b)
            opsets[domain] = max(version, opsets.get(domain, 0))
        elif number == 14 and wire == 2:
            key, value = _string_pair(buf, a, b)
            if key in metadata:
                raise ModelError(f"the ONNX model's metadata_props repeat the key {key!r}")
            metadata[key] = value
        elif number == 7 and wire == 2:
            graph = (a, b)
    if graph is None:
        raise ModelError("these bytes are not an ONNX model: no graph found")
    return _graph(buf, *graph, opsets, metadata)


def _graph(
    buf: bytes, start: int, end: int, opsets: dict[str, int], metadata: dict[str, str]
) -> ParsedModel:
    nodes: list[Node] = []
    initializers: dict[str, np.ndarray] = {}
    inputs: list[ValueInfo] = []
    outputs: list[ValueInfo] = []
    for number, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            continue
        if number == 1:
            nodes.append(_node(buf, a, b))
        elif number == 5:
            tensor_name, array = _tensor(buf, a, b)
            initializers[tensor_name] = array
        elif number == 11:
            inputs.append(_value_info(buf, a, b))
        elif number == 12:
            outputs.append(_value_info(buf, a, b))
    return ParsedModel(
        opsets=opsets,
        metadata=metadata,
        nodes=tuple(nodes),
        initializers=initializers,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
    )


def _node(buf: bytes, start: int, end: int) -> Node:
    inputs: list[str] = []
    outputs: list[str] = []
    attributes: dict[str, AttributeValue] = {}
    op_type = domain = name = ""
    for number, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            continue
        if number == 1:
            inputs.append(_text(buf, a, b))
        elif number == 2:
            outputs.append(_text(buf, a, b))
        elif number == 3:
            name = _text(buf, a, b)
        elif number == 4:
            op_type = _text(buf, a, b)
        elif number == 7:
            domain = _text(buf, a, b)
        elif number == 5:
            attribute = _attribute(buf, a, b)
            if attribute is not None:
                attributes[attribute[0]] = attribute[1]
    if not op_type:
        raise ModelError(f"the ONNX graph has a node without an op_type (node {name!r})")
    return Node(op_type, domain, name, tuple(inputs), tuple(outputs), attributes)


def _attribute(buf: bytes, start: int, end: int) -> tuple[str, AttributeValue] | None:
    """``(name, value)``, or ``None`` for attribute types evaluation never needs (graphs...)."""
    name = ""
    declared = 0
    present: list[int] = []
    scalars: dict[int, AttributeValue] = {}
    floats: list[np.ndarray] = []
    ints: list[np.ndarray] = []
    strings: list[str] = []
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1 and wire == 2:
            name = _text(buf, a, b)
        elif number == 20 and wire == 0:
            declared = a
        elif number in _ATTRIBUTE_FIELD_TYPES:
            present.append(_ATTRIBUTE_FIELD_TYPES[number])
            if number == 2 and wire == 5:
                scalars[1] = float(struct.unpack_from("<f", buf, a)[0])
            elif number == 3 and wire == 0:
                scalars[2] = _signed(a)
            elif number == 4 and wire == 2:
                scalars[3] = _text(buf, a, b)
            elif number == 5 and wire == 2:
                scalars[4] = _tensor(buf, a, b)[1]
            elif number == 7:
                floats.append(_fixed_array(buf, wire, a, b, np.dtype("<f4"), 5))
            elif number == 8:
                ints.append(_varint_array(buf, wire, a, b))
            elif number == 9 and wire == 2:
                strings.append(_text(buf, a, b))
            else:
                raise ModelError(f"attribute {name!r} has a field with the wrong wire type")
    kind = declared or (present[0] if present else 0)
    if kind not in _ATTRIBUTE_TYPES:
        return None
    if kind == 6:
        return name, tuple(float(v) for v in np.concatenate(floats or [np.empty(0, "<f4")]))
    if kind == 7:
        return name, tuple(int(v) for v in np.concatenate(ints or [np.empty(0, "<i8")]))
    if kind == 8:
        return name, tuple(strings)
    if kind not in scalars:
        raise ModelError(
            f"attribute {name!r} is declared {_ATTRIBUTE_TYPES[kind]} but has no value"
        )
    return name, scalars[kind]


def _tensor(buf: bytes, start: int, end: int) -> tuple[str, np.ndarray]:
    dims: list[np.ndarray] = []
    data_type = 0
    name = ""
    raw: tuple[int, int] | None = None
    typed: dict[int, list[tuple[int, int, int]]] = {}
    strings: list[str] = []
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1:
            dims.append(_varint_array(buf, wire, a, b))
        elif number == 2 and wire == 0:
            data_type = a
        elif number == 8 and wire == 2:
            name = _text(buf, a, b)
        elif number == 9 and wire == 2:
            raw = (a, b)
        elif number == 6 and wire == 2:
            strings.append(_text(buf, a, b))
        elif number in (_FLOAT_DATA, _INT32_DATA, _INT64_DATA, _DOUBLE_DATA, _UINT64_DATA):
            typed.setdefault(number, []).append((wire, a, b))
        elif number == 14 and wire == 0 and a == 1:
            raise ModelError(f"tensor {name!r} keeps its data in an external file; embed it")
        elif number == 3:
            raise ModelError(f"tensor {name!r} is segmented; segmented tensors are not supported")
    shape = tuple(int(d) for d in np.concatenate(dims or [np.empty(0, "<i8")]))
    if len(shape) > _MAX_DIMS or any(d < 0 for d in shape):
        raise ModelError(f"tensor {name!r} has an invalid shape {shape}")
    count = math.prod(shape)
    if data_type not in _TENSOR_TYPES:
        raise ModelError(
            f"tensor {name!r} has data type {data_type}; supported: "
            "float, double, float16, bool, string and (u)int8/16/32/64"
        )
    dtype, typed_field = _TENSOR_TYPES[data_type]
    if data_type == 8:
        values: np.ndarray = np.array(strings, dtype=object)
    elif raw is not None:
        if count * dtype.itemsize != raw[1] - raw[0]:
            raise ModelError(
                f"tensor {name!r} of shape {shape} needs {count * dtype.itemsize} bytes "
                f"of raw_data, has {raw[1] - raw[0]}"
            )
        values = np.frombuffer(buf, dtype, count, raw[0])
    else:
        values = _typed_values(buf, typed.get(typed_field, []), typed_field, dtype)
    if values.size != count:
        raise ModelError(f"tensor {name!r} of shape {shape} holds {values.size} values")
    return name, values.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def _typed_values(
    buf: bytes, chunks: list[tuple[int, int, int]], number: int, dtype: np.dtype
) -> np.ndarray:
    if number == _FLOAT_DATA:
        parts = [_fixed_array(buf, w, a, b, np.dtype("<f4"), 5) for w, a, b in chunks]
    elif number == _DOUBLE_DATA:
        parts = [_fixed_array(buf, w, a, b, np.dtype("<f8"), 1) for w, a, b in chunks]
    else:
        parts = [_varint_array(buf, w, a, b) for w, a, b in chunks]
    values = np.concatenate(parts) if parts else np.empty(0, "<i8")
    if dtype == np.dtype("<f2"):
        return values.astype("<u2").view("<f2")
    return values.astype(dtype)


def _value_info(buf: bytes, start: int, end: int) -> ValueInfo:
    name = ""
    elem_type = 0
    shape: tuple[int | None, ...] | None = None
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1 and wire == 2:
            name = _text(buf, a, b)
        elif number == 2 and wire == 2:
            for t_number, t_wire, ta, tb in _fields(buf, a, b):
                if t_number == 1 and t_wire == 2:  # TypeProto.tensor_type
                    elem_type, shape = _tensor_type(buf, ta, tb)
    return ValueInfo(name, elem_type, shape)


def _tensor_type(buf: bytes, start: int, end: int) -> tuple[int, tuple[int | None, ...] | None]:
    elem_type = 0
    dims: list[int | None] | None = None
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1 and wire == 0:
            elem_type = a
        elif number == 2 and wire == 2:
            dims = []
            for d_number, d_wire, da, db in _fields(buf, a, b):
                if d_number == 1 and d_wire == 2:
                    value: int | None = None
                    for v_number, v_wire, va, _ in _fields(buf, da, db):
                        if v_number == 1 and v_wire == 0:
                            value = _signed(va)
                    dims.append(value)
    return elem_type, None if dims is None else tuple(dims)


def _opset(buf: bytes, start: int, end: int) -> tuple[str, int]:
    domain, version = "", 0
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1 and wire == 2:
            domain = _text(buf, a, b)
        elif number == 2 and wire == 0:
            version = _signed(a)
    return ("" if domain == "ai.onnx" else domain), version


def _string_pair(buf: bytes, start: int, end: int) -> tuple[str, str]:
    key = value = ""
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1 and wire == 2:
            key = _text(buf, a, b)
        elif number == 2 and wire == 2:
            value = _text(buf, a, b)
    return key, value


# -- wire format --------------------------------------------------------------------------


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field number, wire type, a, b)`` for each field in ``buf[start:end]``.

    For a varint ``a`` is its value; for fixed32/64 ``a`` is the offset of its bytes; for a
    length-delimited field ``buf[a:b]`` is its payload.
    """
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ModelError(f"malformed ONNX model: field number 0 at byte {pos}")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, pos
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise ModelError(f"the ONNX model is truncated at byte {pos}")
            yield number, wire, pos, pos + size
            pos += size
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise ModelError(
                    f"the ONNX model is truncated: a field at byte {pos} declares {length} "
                    f"bytes, {end - pos} remain"
                )
            yield number, wire, pos, pos + length
            pos += length
        else:
            raise ModelError(f"malformed ONNX model: unsupported wire type {wire} at byte {pos}")


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 70:
        if pos >= end:
            raise ModelError(f"the ONNX model is truncated inside a number at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
    raise ModelError(f"malformed ONNX model: a number longer than 10 bytes ends at byte {pos}")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _varint_array(buf: bytes, wire: int, a: int, b: int) -> np.ndarray:
    """A repeated varint field as int64: one unpacked element, or a packed run."""
    if wire == 0:
        return np.array([_signed(a)], dtype=np.int64)
    if wire != 2:
        raise ModelError(f"malformed ONNX model: a list of integers has wire type {wire}")
    raw = np.frombuffer(buf, np.uint8, b - a, a)
    if raw.size == 0:
        return np.empty(0, np.int64)
    if raw[-1] >= 0x80:
        raise ModelError(f"the ONNX model is truncated inside a list of integers at byte {b}")
    last = np.flatnonzero(raw < 0x80)
    first = np.concatenate(([0], last[:-1] + 1))
    if int((last - first).max()) >= 10:
        raise ModelError("malformed ONNX model: a number longer than 10 bytes in a list")
    position = np.arange(raw.size) - np.repeat(first, last - first + 1)
    payload = (raw & 0x7F).astype(np.uint64) << (7 * position).astype(np.uint64)
    return np.bitwise_or.reduceat(payload, first).view(np.int64)


def _fixed_array(
    buf: bytes, wire: int, a: int, b: int, dtype: np.dtype, scalar_wire: int
) -> np.ndarray:
    """A repeated fixed-width field (floats, doubles), packed or one element at a time."""
    if wire not in (2, scalar_wire) or (b - a) % dtype.itemsize:
        raise ModelError("malformed ONNX model: a list of numbers has the wrong size")
    return np.frombuffer(buf, dtype, (b - a) // dtype.itemsize, a)


def _text(buf: bytes, a: int, b: int) -> str:
    try:
        return buf[a:b].decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"malformed ONNX model: text at byte {a} is not UTF-8") from None
