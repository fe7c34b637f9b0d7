"""``PersonaModel``: the persona classifier on the device, run by onnxruntime or by numpy.

onnxruntime is used where it is installed; on platforms without a wheel (python-for-android)
the same ONNX graph runs on :class:`~edgepersona.sdk._onnx_numpy.NumpyGraph`. Both engines
give the same probabilities to 1e-5 for features of ordinary size (both compute in float32, so
the disagreement grows with the logits: ~1e-4 near a tie when features reach 1e3), and a
model is accepted only if it gives sane probabilities on a canned input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._onnx_numpy import NumpyGraph
from ._onnx_proto import Node, ParsedModel, ValueInfo, parse_model
from .errors import ModelError

__all__ = ["ENGINES", "PersonaModel"]

ENGINES = ("auto", "onnxruntime", "numpy")
_FLOAT = 1  # TensorProto.FLOAT
_SUM_TOLERANCE = 1e-4
_RANGE_TOLERANCE = 1e-6  # float32 rounding may put a certain class at 1.0000001
_F32 = np.dtype(np.float32)

Runner = Callable[[np.ndarray], np.ndarray]  # float32 (rows, features) -> (rows, classes)


class PersonaModel:
    """One loaded persona classifier; reuse it: a session is built once.

    Create it with :meth:`from_bytes`. ``engine`` says which runtime is in use,
    ``metadata`` holds the model's ``metadata_props``, and ``n_features`` / ``n_classes``
    the width of its input and of its probabilities. Thread-safe.
    """

    engine: str
    metadata: dict[str, str]
    n_features: int
    n_classes: int

    def __init__(
        self, run: Runner, engine: str, metadata: dict[str, str], n_features: int, n_classes: int
    ) -> None:
        self._run = run
        self.engine = engine
        self.metadata = metadata
        self.n_features = n_features
        self.n_classes = n_classes
        self._row_shape = (n_features,)
        self._one_row = (1, n_features)
        self._tiny_weights = np.full(n_features, 2.0**-64, _F32)

    @classmethod
    def from_bytes(cls, data: bytes, *, engine: str = "auto") -> PersonaModel:
        """Load a serialized ONNX classifier (skl2onnx export with ``zipmap`` off).

        Args:
            data: the ``model.onnx`` bytes.
            engine: ``"auto"`` (onnxruntime if it can be imported, else numpy),
                ``"onnxruntime"`` or ``"numpy"``.

        Raises:
            ModelError: the bytes are not a usable model, ``engine`` is unknown, onnxruntime
                was asked for but is not installed, or the model's outputs on a canned input
                are not probabilities.
        """
        if engine not in ENGINES:
            raise ModelError(f"unknown engine {engine!r}; accepted: {', '.join(ENGINES)}")
        model = parse_model(data)
        feature_input = _feature_input(model)
        probabilities = _probabilities_output(model)
        n_features = _feature_count(model, feature_input)
        run = None
        if engine != "numpy":
            run = _onnxruntime_runner(bytes(data), feature_input.name, probabilities.name)
            if run is None and engine == "onnxruntime":
                raise ModelError(
                    "engine='onnxruntime' was asked for but onnxruntime is not installed; "
                    "install it or use engine='auto' or 'numpy'"
                )
        if run is None:
            run = _numpy_runner(model, feature_input.name, probabilities.name)
            engine = "numpy"
        else:
            engine = "onnxruntime"
        n_classes = _sanity_check(run, n_features)
        declared = probabilities.shape[-1] if probabilities.shape else None
        if declared is not None and declared != n_classes:
            raise ModelError(
                f"the model declares {declared} classes in {probabilities.name!r} "
                f"but computes {n_classes}"
            )
        return cls(run, engine, dict(model.metadata), n_features, n_classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for one feature vector or a batch.

        Args:
            x: float32 features, shape ``(n_features,)`` or ``(rows, n_features)``; other
                float dtypes are converted.

        Returns:
            float64 probabilities, shape ``(n_classes,)`` or ``(rows, n_classes)``.

        Raises:
            ModelError: ``x`` has the wrong shape or dtype, or holds NaN or infinity.
        """
        if type(x) is not np.ndarray or x.dtype is not _F32:
            x = self._as_float32(x)
        if x.shape == self._row_shape:
            # A dot product is NaN or inf iff some feature is: 0.3 us where np.isfinite(x).all()
            # takes 0.8. The 2**-64 weights keep a sum of huge finite features finite.
            if not math.isfinite(x.dot(self._tiny_weights)):
                self._check_finite(x)
            return self._run(x.reshape(self._one_row))[0].astype(np.float64)
        if x.ndim == 2 and x.shape[1] == self.n_features:
            if x.shape[0] == 0:
                return np.empty((0, self.n_classes))
            self._check_finite(x)
            return self._run(x).astype(np.float64)
        raise ModelError(
            f"expected features of shape ({self.n_features},) or "
            f"(rows, {self.n_features}), got {x.shape}"
        )

    @staticmethod
    def _check_finite(x: np.ndarray) -> None:
        finite = np.isfinite(x)
        if not finite.all():
            bad = tuple(np.argwhere(~finite)[0].tolist())
            raise ModelError(f"features must be finite numbers; x{list(bad)} is {x[bad]}")

    def _as_float32(self, x: Any) -> np.ndarray:
        try:
            array = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"expected a float32 array of features, got {exc}") from None
        if array.dtype.kind != "f":
            raise ModelError(
                f"expected float32 features (shape ({self.n_features},) or "
                f"(rows, {self.n_features})), got dtype {array.dtype}"
            )
        with np.errstate(over="ignore"):  # values beyond float32 become inf, then rejected
            return array.astype(_F32)

    def __repr__(self) -> str:
        return (
            f"PersonaModel(engine={self.engine!r}, n_features={self.n_features}, "
            f"n_classes={self.n_classes})"
        )


def _feature_input(model: ParsedModel) -> ValueInfo:
    inputs = [v for v in model.inputs if v.name not in model.initializers]
    if len(inputs) != 1:
        raise ModelError(
            f"expected a model with one input (the feature vector), got {len(inputs)}: "
            f"{[v.name for v in inputs]}"
        )
    if inputs[0].elem_type != _FLOAT:
        raise ModelError(f"the model input {inputs[0].name!r} must be a float32 tensor")
    return inputs[0]


def _probabilities_output(model: ParsedModel) -> ValueInfo:
    floats = [v for v in model.outputs if v.elem_type == _FLOAT]
    named = [v for v in floats if v.name == "probabilities"]
    if named:
        return named[0]
    if len(floats) != 1:
        raise ModelError(
            "expected a float32 output named 'probabilities' (skl2onnx with zipmap off); "
            f"the model outputs {[v.name for v in model.outputs]}"
        )
    return floats[0]


def _feature_count(model: ParsedModel, feature_input: ValueInfo) -> int:
    """The input's declared width, else the width the first weights imply."""
    shape = feature_input.shape
    if shape and len(shape) == 2 and shape[1] is not None and shape[1] > 0:
        return shape[1]
    for node in model.nodes:
        width = _weights_width(model, node)
        if width:
            return width
    raise ModelError(
        f"cannot tell how many features the model reads: input {feature_input.name!r} "
        "has no fixed width; export it with a shape like [None, n_features]"
    )


def _weights_width(model: ParsedModel, node: Node) -> int | None:
    """How many features ``node`` expects, if its weights say so."""
    attrs = node.attributes
    if node.op_type == "Scaler":
        offset = attrs.get("offset")
        return len(offset) if isinstance(offset, tuple) and len(offset) > 1 else None
    if node.op_type == "LinearClassifier":
        coefficients, intercepts = attrs.get("coefficients"), attrs.get("intercepts")
        if isinstance(coefficients, tuple) and isinstance(intercepts, tuple) and intercepts:
            return len(coefficients) // len(intercepts)
        return None
    if node.op_type in ("MatMul", "Gemm") and len(node.inputs) > 1:
        weights = model.initializers.get(node.inputs[1])
        if weights is not None and weights.ndim == 2:
            return int(weights.shape[1 if attrs.get("transB") else 0])
    return None


def _onnxruntime_runner(data: bytes, input_name: str, output_name: str) -> Runner | None:
    """A runner on an onnxruntime session, or ``None`` when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings would go to the app's stderr
    try:
        session = onnxruntime.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own types, all Exception subclasses
        raise ModelError(f"onnxruntime cannot load the model: {exc}") from exc
    run = session.run
    outputs = [output_name]

    def run_onnxruntime(batch: np.ndarray) -> np.ndarray:
        try:
            result: np.ndarray = run(outputs, {input_name: batch})[0]
        except Exception as exc:  # as the numpy engine: a failing model is a ModelError
            raise ModelError(f"onnxruntime cannot run the model: {exc}") from exc
        return result

    return run_onnxruntime


def _numpy_runner(model: ParsedModel, input_name: str, output_name: str) -> Runner:
    run = NumpyGraph(model, outputs=[output_name]).run

    def run_numpy(batch: np.ndarray) -> np.ndarray:
        return run({input_name: batch})[output_name]

    return run_numpy


def _sanity_check(run: Runner, n_features: int) -> int:
    """Run zeros through the model; return the number of classes if they are probabilities."""
    try:
        probabilities = np.asarray(run(np.zeros((2, n_features), _F32)), dtype=np.float64)
    except ModelError as exc:
        raise ModelError(f"the model cannot run on a canned input: {exc}") from exc
    if probabilities.ndim != 2 or probabilities.shape[0] != 2 or probabilities.shape[1] < 2:
        raise ModelError(
            "expected probabilities of shape (rows, classes >= 2) on a canned input, "
            f"got shape {probabilities.shape}"
        )
    sums = probabilities.sum(axis=1)
    if (
        not np.isfinite(probabilities).all()
        or probabilities.min() < -_RANGE_TOLERANCE
        or probabilities.max() > 1.0 + _RANGE_TOLERANCE
        or np.abs(sums - 1.0).max() > _SUM_TOLERANCE
    ):
        raise ModelError(
            "the model's outputs on a canned input are not probabilities "
            f"(finite, in [0, 1], summing to 1): {probabilities[0].tolist()}"
        )
    return int(probabilities.shape[1])
