"""Evaluate an ONNX classifier graph with numpy alone: the fallback where onnxruntime is missing.

Only the operators that scikit-learn's MLP and logistic-regression exports (through skl2onnx)
use are implemented, each with the ONNX semantics that onnxruntime follows; computing in
float32 like onnxruntime, the two differ only by rounding. A graph that uses anything else is
refused when the :class:`NumpyGraph` is built, never half-way through a prediction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._onnx_proto import Node, ParsedModel
from .errors import ModelError

__all__ = ["SUPPORTED_OPS", "NumpyGraph"]

# A kernel returns one array, or a tuple of arrays for the multi-output ops in _ARITY.
Kernel = Callable[..., Any]
_ML = "ai.onnx.ml"
_F32 = np.float32
_CAST_TYPES = {
    1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
    7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64,
}  # fmt: skip


class NumpyGraph:
    """A parsed ONNX graph compiled into a list of numpy steps.

    Args:
        model: the output of :func:`~edgepersona.sdk._onnx_proto.parse_model`.
        outputs: the graph values :meth:`run` returns (default: the graph's outputs); only
            the nodes they depend on are evaluated.

    Raises:
        ModelError: the graph uses an unsupported operator or attribute value, reads a
            value nothing defines, defines one twice, or has a cycle.
    """

    def __init__(self, model: ParsedModel, outputs: Sequence[str] | None = None) -> None:
        opset = model.opset("")
        kernels = [_compile(node, opset) for node in model.nodes]
        self._inputs = tuple(v.name for v in model.inputs if v.name not in model.initializers)
        self._outputs = tuple(outputs if outputs is not None else (v.name for v in model.outputs))
        self._constants: dict[str, Any] = {"": None, **model.initializers}
        order = _topological_order(model.nodes, {*self._constants, *self._inputs})
        needed = set(self._outputs)
        computed: set[str] = set()
        steps = []
        for index in reversed(order):
            node = model.nodes[index]
            if needed.intersection(node.outputs):
                needed.update(node.inputs)
                computed.update(node.outputs)
                target = (
                    node.outputs if _ARITY.get(node.op_type, _UNARY)[2] > 1 else node.outputs[0]
                )
                steps.append((kernels[index], node.inputs, target, _label(node)))
        missing = needed - computed - self._constants.keys() - set(self._inputs)
        if missing:
            raise ModelError(f"the ONNX graph never computes {sorted(missing)}")
        self._steps = tuple(reversed(steps))

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Evaluate the graph on ``inputs`` (``{graph input name: array}``).

        Raises:
            ModelError: an input is missing, or a node fails on these inputs (wrong shape...).
        """
        values = {**self._constants, **inputs}
        for kernel, names, target, label in self._steps:
            try:
                result = kernel(*[values[name] for name in names])
            except KeyError as exc:
                raise ModelError(
                    f"missing model input {exc}; the model reads {list(self._inputs)}"
                ) from None
            except (ValueError, IndexError, TypeError, ArithmeticError) as exc:
                raise ModelError(f"ONNX node {label} failed: {exc}") from exc
            if type(target) is str:
                values[target] = result
            else:
                values.update(zip(target, result, strict=False))
        return {name: values[name] for name in self._outputs}


def _label(node: Node) -> str:
    return f"{node.name!r} ({node.domain or 'ai.onnx'}:{node.op_type})"


def _topological_order(nodes: Sequence[Node], available: set[str]) -> list[int]:
    producer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in filter(None, node.outputs):
            if name in producer or name in available:
                raise ModelError(f"the ONNX graph defines {name!r} twice")
            producer[name] = index
    waiting = [0] * len(nodes)
    consumers: list[list[int]] = [[] for _ in nodes]
    for index, node in enumerate(nodes):
        for name in set(node.inputs) - available:
            if name not in producer:
                raise ModelError(
                    f"ONNX node {_label(node)} reads {name!r}, "
                    "which no node, graph input or initializer defines"
                )
            waiting[index] += 1
            consumers[producer[name]].append(index)
    ready = deque(index for index, count in enumerate(waiting) if count == 0)
    order = []
    while ready:
        index = ready.popleft()
        order.append(index)
        for consumer in consumers[index]:
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                ready.append(consumer)
    if len(order) < len(nodes):
        raise ModelError("the ONNX graph has a cycle")
    return order


# -- attributes ---------------------------------------------------------------------------


_KINDS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int),
    "float": lambda v: isinstance(v, (int, float)),
    "str": lambda v: isinstance(v, str),
    "ints": lambda v: isinstance(v, tuple) and all(isinstance(i, int) for i in v),
    "floats": lambda v: isinstance(v, tuple) and all(isinstance(f, (int, float)) for f in v),
    "strs": lambda v: isinstance(v, tuple) and all(isinstance(t, str) for t in v),
}


def _attr(node: Node, name: str, kind: str, default: Any = None) -> Any:
    value = node.attributes.get(name, default)
    if value is None:
        raise ModelError(f"ONNX node {_label(node)} needs the attribute {name!r}")
    if not _KINDS[kind](value):
        raise ModelError(f"ONNX node {_label(node)}: attribute {name!r} should be {kind}")
    return value


def _choice(node: Node, name: str, default: str, allowed: tuple[str, ...]) -> str:
    value: str = _attr(node, name, "str", default)
    if value not in allowed:
        raise ModelError(
            f"ONNX node {_label(node)}: {name}={value!r} is not supported; supported: "
            + ", ".join(allowed)
        )
    return value


# -- activations shared by several ops ----------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 1/(1+exp(-x)) overflows (and warns) below -88 in float32; tanh never does.
    half: np.ndarray = np.tanh(x * 0.5)
    return (half + 1) * 0.5


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    exp = np.exp(x - x.max(axis=axis, keepdims=True))
    result: np.ndarray = exp / exp.sum(axis=axis, keepdims=True)
    return result


# -- ai.onnx operators --------------------------------------------------------------------


def _plain(function: Callable[..., np.ndarray]) -> Callable[[Node, int], Kernel]:
    return lambda node, opset: function


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(np.result_type(a, b), np.integer):  # ONNX: truncate towards zero
        quotient: np.ndarray = np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))
        return quotient.astype(np.result_type(a, b))
    return np.divide(a, b)


def _gemm(node: Node, opset: int) -> Kernel:
    alpha = float(_attr(node, "alpha", "float", 1.0))
    beta = float(_attr(node, "beta", "float", 1.0))
    trans_a = _attr(node, "transA", "int", 0)
    trans_b = _attr(node, "transB", "int", 0)

    def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        y = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if alpha != 1.0:
            y = y * alpha
        if c is not None:
            y = y + (c * beta if beta != 1.0 else c)
        return y

    return gemm


def _softmax_op(node: Node, opset: int) -> Kernel:
    axis = _attr(node, "axis", "int", -1 if opset >= 13 else 1)
    if opset >= 13:
        return lambda x: _softmax(x, axis)

    def coerced(x: np.ndarray) -> np.ndarray:  # before opset 13: over axis.. as one
        split = axis + x.ndim if axis < 0 else axis
        rows = int(np.prod(x.shape[:split]))
        return _softmax(x.reshape(rows, -1), 1).reshape(x.shape)

    return coerced


def _argmax(node: Node, opset: int) -> Kernel:
    axis = _attr(node, "axis", "int", 0)
    keepdims = _attr(node, "keepdims", "int", 1)
    last = _attr(node, "select_last_index", "int", 0)

    def argmax(x: np.ndarray) -> np.ndarray:
        if last:
            index = x.shape[axis] - 1 - np.argmax(np.flip(x, axis), axis=axis)
        else:
            index = np.argmax(x, axis=axis)
        if keepdims:
            index = np.expand_dims(index, axis)
        return index.astype(np.int64, copy=False)

    return argmax


def _cast(node: Node, opset: int) -> Kernel:
    to = _attr(node, "to", "int")
    if to not in _CAST_TYPES:
        raise ModelError(f"ONNX node {_label(node)}: Cast to data type {to} is not supported")
    dtype = np.dtype(_CAST_TYPES[to])
    return lambda x: x.astype(dtype, copy=False)


def _reshape(node: Node, opset: int) -> Kernel:
    allow_zero = _attr(node, "allowzero", "int", 0)

    def reshape(x: np.ndarray, shape: np.ndarray) -> np.ndarray:
        dims = [int(d) for d in shape.reshape(-1)]
        if not allow_zero:
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return x.reshape(dims)

    return reshape


def _concat(node: Node, opset: int) -> Kernel:
    axis = _attr(node, "axis", "int")
    return lambda *parts: np.concatenate(parts, axis=axis)


def _flatten(node: Node, opset: int) -> Kernel:
    axis = _attr(node, "axis", "int", 1)

    def flatten(x: np.ndarray) -> np.ndarray:
        split = axis + x.ndim if axis < 0 else axis
        return x.reshape(int(np.prod(x.shape[:split])), -1)

    return flatten


# -- ai.onnx.ml operators -----------------------------------------------------------------


def _scaler(node: Node, opset: int) -> Kernel:
    offset = np.array(_attr(node, "offset", "floats"), dtype=_F32)
    scale = np.array(_attr(node, "scale", "floats"), dtype=_F32)
    if offset.size == 0 or scale.size == 0:
        raise ModelError(f"ONNX node {_label(node)} needs non-empty offset and scale")

    def scaler(x: np.ndarray) -> np.ndarray:
        if offset.size not in (1, x.shape[-1]) or scale.size not in (1, x.shape[-1]):
            raise ValueError(f"offset and scale do not match {x.shape[-1]} features")
        return (x.astype(_F32, copy=False) - offset) * scale

    return scaler


def _normalizer(node: Node, opset: int) -> Kernel:
    norm = _choice(node, "norm", "MAX", ("MAX", "L1", "L2"))

    def normalizer(x: np.ndarray) -> np.ndarray:
        x = x.astype(_F32, copy=False)
        if norm == "MAX":
            denominator = x.max(axis=-1, keepdims=True)
        elif norm == "L1":
            denominator = np.abs(x).sum(axis=-1, keepdims=True)
        else:
            denominator = np.sqrt((x * x).sum(axis=-1, keepdims=True))
        return x / np.where(denominator == 0, 1, denominator)  # as onnxruntime: 0 stays 0

    return normalizer


def _linear_classifier(node: Node, opset: int) -> Kernel:
    intercepts = np.array(_attr(node, "intercepts", "floats", ()), dtype=_F32)
    coefficients = np.array(_attr(node, "coefficients", "floats"), dtype=_F32)
    transform = _choice(node, "post_transform", "NONE", ("NONE", "SOFTMAX", "LOGISTIC"))
    labels = _attr(node, "classlabels_ints", "ints", ()) or _attr(
        node, "classlabels_strings", "strs", ()
    )
    targets = intercepts.size
    if targets < 2 or coefficients.size % targets or not labels or len(labels) != targets:
        raise ModelError(
            f"ONNX node {_label(node)}: expected one intercept, one row of coefficients and "
            f"one class label per class, at least 2 classes; got {targets} intercepts, "
            f"{coefficients.size} coefficients, {len(labels)} labels"
        )
    weights = np.ascontiguousarray(coefficients.reshape(targets, -1).T)
    label_array = np.array(labels)

    def linear_classifier(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = x.astype(_F32, copy=False).reshape(-1, x.shape[-1]) @ weights + intercepts
        label = label_array[np.argmax(scores, axis=1)]  # first maximum, as onnxruntime
        if transform == "SOFTMAX":
            scores = _softmax(scores, 1)
        elif transform == "LOGISTIC":
            scores = _sigmoid(scores)
        return label, scores

    return linear_classifier


def _array_feature_extractor(node: Node, opset: int) -> Kernel:
    def extract(x: np.ndarray, indices: np.ndarray) -> np.ndarray:
        flat = indices.reshape(-1)
        if flat.size == 0 or flat.min() < 0 or flat.max() >= x.shape[-1]:
            raise ValueError(f"indices {flat.tolist()[:8]} out of range for {x.shape[-1]} values")
        selected = np.take(x, flat, axis=-1)
        return selected.reshape(1, -1) if x.ndim == 1 else selected

    return extract


_BUILDERS: dict[tuple[str, str], Callable[[Node, int], Kernel]] = {
    ("", "Identity"): _plain(lambda x: x),
    ("", "Add"): _plain(np.add),
    ("", "Sub"): _plain(np.subtract),
    ("", "Mul"): _plain(np.multiply),
    ("", "Div"): _plain(_divide),
    ("", "MatMul"): _plain(np.matmul),
    ("", "Relu"): _plain(lambda x: np.maximum(x, 0)),
    ("", "Tanh"): _plain(np.tanh),
    ("", "Sigmoid"): _plain(_sigmoid),
    ("", "Gemm"): _gemm,
    ("", "Softmax"): _softmax_op,
    ("", "ArgMax"): _argmax,
    ("", "Cast"): _cast,
    ("", "Reshape"): _reshape,
    ("", "Concat"): _concat,
    ("", "Flatten"): _flatten,
    (_ML, "Scaler"): _scaler,
    (_ML, "Normalizer"): _normalizer,
    (_ML, "LinearClassifier"): _linear_classifier,
    (_ML, "ArrayFeatureExtractor"): _array_feature_extractor,
}
# (inputs at least, inputs at most, outputs at most) for each operator
_ARITY = {"Add": (2, 2, 1), "Sub": (2, 2, 1), "Mul": (2, 2, 1), "Div": (2, 2, 1),
          "MatMul": (2, 2, 1), "Gemm": (2, 3, 1), "Reshape": (2, 2, 1),
          "Concat": (1, 1 << 30, 1), "LinearClassifier": (1, 1, 2),
          "ArrayFeatureExtractor": (2, 2, 1)}  # fmt: skip
_UNARY = (1, 1, 1)
SUPPORTED_OPS = tuple(f"{d or 'ai.onnx'}:{op}" for d, op in sorted(_BUILDERS))


def _compile(node: Node, opset: int) -> Kernel:
    domain = "" if node.domain == "ai.onnx" else node.domain
    build = _BUILDERS.get((domain, node.op_type))
    if build is None:
        hint = " (export with options {id(classifier): {'zipmap': False}})"
        raise ModelError(
            f"unsupported ONNX op {domain or 'ai.onnx'}:{node.op_type} in node {node.name!r}"
            f"{hint if node.op_type == 'ZipMap' else ''}; the numpy engine supports: "
            + ", ".join(SUPPORTED_OPS)
        )
    least, most, outputs = _ARITY.get(node.op_type, _UNARY)
    if not least <= len(node.inputs) <= most or not 1 <= len(node.outputs) <= outputs:
        raise ModelError(
            f"ONNX node {_label(node)} has {len(node.inputs)} inputs and "
            f"{len(node.outputs)} outputs; expected {least}..{most} and 1..{outputs}"
        )
    return build(node, opset)
