"""PersonaModel on both engines, the numpy ONNX evaluator and the protobuf reader under it.

The models are the ones the project exports (scikit-learn pipelines through skl2onnx), trained
here on small separable data with fixed seeds; onnxruntime is the reference for the numpy
engine, and scikit-learn for both.
"""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from edgepersona.sdk._inference import PersonaModel
from edgepersona.sdk._onnx_numpy import SUPPORTED_OPS, NumpyGraph
from edgepersona.sdk._onnx_proto import MAX_MODEL_BYTES, parse_model
from edgepersona.sdk.errors import ModelError

N_FEATURES = 25
ML = "ai.onnx.ml"

# name -> (classifier factory, number of classes)
MODELS: dict[str, tuple[Callable[[], Any], int]] = {
    "mlp_relu": (lambda: MLPClassifier((32,), activation="relu", max_iter=400, random_state=0), 5),
    "mlp_tanh": (lambda: MLPClassifier((32,), activation="tanh", max_iter=400, random_state=0), 5),
    "mlp_logistic": (
        lambda: MLPClassifier((32,), activation="logistic", max_iter=400, random_state=0),
        5,
    ),
    "mlp_two_layers": (lambda: MLPClassifier((32, 16), max_iter=400, random_state=0), 5),
    "mlp_relu_binary": (lambda: MLPClassifier((32,), max_iter=400, random_state=0), 2),
    "logreg_multinomial": (lambda: LogisticRegression(max_iter=2000), 6),
    "logreg_binary": (lambda: LogisticRegression(max_iter=2000), 2),
}


def separable(n_classes: int, seed: int, rows: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(n_classes, N_FEATURES))
    y = rng.integers(0, n_classes, rows)
    return (centers[y] + rng.normal(size=(rows, N_FEATURES))).astype(np.float32), y


def export(pipe: Pipeline, x: np.ndarray, opset: int | None = None) -> bytes:
    # zipmap is an option of the classifier, so it is keyed by the classifier step's id.
    options = {id(pipe.steps[-1][1]): {"zipmap": False}}
    return to_onnx(pipe, x[:1], options=options, target_opset=opset).SerializeToString()


@functools.cache
def fitted(name: str) -> tuple[Pipeline, np.ndarray]:
    factory, n_classes = MODELS[name]
    x, y = separable(n_classes, seed=sorted(MODELS).index(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = Pipeline([("scale", StandardScaler()), ("clf", factory())]).fit(x, y)
    return pipe, x


@functools.cache
def model_bytes(name: str, opset: int | None = None) -> bytes:
    pipe, x = fitted(name)
    return export(pipe, x, opset)


def both_engines(data: bytes) -> tuple[PersonaModel, PersonaModel]:
    return (
        PersonaModel.from_bytes(data, engine="onnxruntime"),
        PersonaModel.from_bytes(data, engine="numpy"),
    )


def realistic_inputs(name: str) -> np.ndarray:
    """Rows like the training data, and rows anywhere in +-10 (a few standard deviations)."""
    n_classes = MODELS[name][1]
    like_training, _ = separable(n_classes, seed=100 + sorted(MODELS).index(name), rows=300)
    wide = np.random.default_rng(7).uniform(-10, 10, size=(200, N_FEATURES))
    return np.vstack([like_training, wide]).astype(np.float32)


def extreme_inputs() -> np.ndarray:
    rng = np.random.default_rng(11)
    whole_rows = rng.uniform(-1e3, 1e3, size=(150, N_FEATURES))
    spikes = rng.normal(size=(150, N_FEATURES))
    for row in spikes:
        row[rng.choice(N_FEATURES, 3, replace=False)] = rng.choice([-1e3, 1e3], 3)
    return np.vstack([whole_rows, spikes]).astype(np.float32)


# -- agreement: onnxruntime, numpy and scikit-learn --------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_engines_agree_with_each_other_and_with_sklearn(name: str) -> None:
    pipe, _ = fitted(name)
    ort, numpy = both_engines(model_bytes(name))
    x = realistic_inputs(name)
    p_ort, p_numpy = ort.predict_proba(x), numpy.predict_proba(x)
    np.testing.assert_allclose(p_ort, p_numpy, atol=1e-5, rtol=0)
    np.testing.assert_allclose(p_ort, pipe.predict_proba(x), atol=1e-4, rtol=0)
    np.testing.assert_array_equal(pipe.classes_[p_numpy.argmax(axis=1)], pipe.predict(x))
    assert (ort.n_features, ort.n_classes) == (numpy.n_features, numpy.n_classes)
    assert (numpy.n_features, numpy.n_classes) == (N_FEATURES, MODELS[name][1])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_engines_agree_on_extreme_inputs(name: str) -> None:
    # At +-1e3 the logits reach ~1e4, where float32 rounding alone (~1e-3 in a logit) moves
    # a probability near a tie by up to ~1e-4, in either engine and against float64
    # scikit-learn alike; 1e-5 is the agreement on realistic inputs, tested above.
    pipe, _ = fitted(name)
    ort, numpy = both_engines(model_bytes(name))
    x = extreme_inputs()
    p_ort, p_numpy, p_sklearn = ort.predict_proba(x), numpy.predict_proba(x), pipe.predict_proba(x)
    for probabilities in (p_ort, p_numpy):
        assert np.isfinite(probabilities).all()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p_ort, p_numpy, atol=1e-4, rtol=0)
    np.testing.assert_allclose(p_numpy, p_sklearn, atol=1e-4, rtol=0)
    top_two = np.sort(p_sklearn, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-3
    np.testing.assert_array_equal(
        pipe.classes_[p_numpy[clear].argmax(axis=1)], pipe.predict(x)[clear]
    )


@pytest.mark.parametrize("opset", [9, 11, 12, 13, 15, 17, 21])
def test_main_model_exported_at_other_opsets(opset: int) -> None:
    # Before opset 13 Softmax flattens the axes from ``axis`` on: the other code path.
    ort, numpy = both_engines(model_bytes("mlp_relu", opset))
    x = realistic_inputs("mlp_relu")
    np.testing.assert_allclose(ort.predict_proba(x), numpy.predict_proba(x), atol=1e-5, rtol=0)


def test_the_exports_use_only_supported_ops() -> None:
    used = set()
    for name in MODELS:
        graph = onnx.load_from_string(model_bytes(name)).graph
        used |= {f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in graph.node}
    assert used <= set(SUPPORTED_OPS)
    assert {"ai.onnx.ml:Scaler", "ai.onnx:MatMul", "ai.onnx.ml:LinearClassifier"} <= used


def test_one_row_and_batch_give_the_same_answer() -> None:
    for model in both_engines(model_bytes("mlp_relu")):
        x = realistic_inputs("mlp_relu")[:4]
        batch = model.predict_proba(x)
        assert batch.dtype == np.float64 and batch.shape == (4, 5)
        row = model.predict_proba(x[2])
        assert row.dtype == np.float64 and row.shape == (5,)
        np.testing.assert_allclose(row, batch[2], atol=1e-7)
        np.testing.assert_allclose(model.predict_proba(x[::2]), batch[::2], atol=1e-7)
        np.testing.assert_allclose(model.predict_proba(x.astype(np.float64)), batch, atol=1e-7)
        assert model.predict_proba(x[:0]).shape == (0, 5)


# -- engine choice ------------------------------------------------------------------------


def test_auto_uses_onnxruntime_where_it_is_installed() -> None:
    model = PersonaModel.from_bytes(model_bytes("mlp_relu"))
    assert model.engine == "onnxruntime"
    assert PersonaModel.from_bytes(model_bytes("mlp_relu"), engine="numpy").engine == "numpy"
    assert "engine='onnxruntime'" in repr(model)


FALLBACK_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class BlockOnnxruntime(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "onnxruntime":
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, BlockOnnxruntime())
    import numpy as np
    from edgepersona.sdk._inference import PersonaModel
    from edgepersona.sdk.errors import ModelError

    data = open(sys.argv[1], "rb").read()
    model = PersonaModel.from_bytes(data)
    try:
        PersonaModel.from_bytes(data, engine="onnxruntime")
        forced = None
    except ModelError as exc:
        forced = str(exc)
    print(json.dumps({
        "engine": model.engine,
        "probabilities": model.predict_proba(np.zeros(model.n_features, np.float32)).tolist(),
        "forced": forced,
        "imported": "onnxruntime" in sys.modules,
    }))
    """
)


def test_auto_falls_back_to_numpy_without_onnxruntime(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(model_bytes("mlp_relu"))
    done = subprocess.run(
        [sys.executable, "-c", FALLBACK_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["engine"] == "numpy"
    assert not report["imported"]
    assert "onnxruntime is not installed" in report["forced"]
    expected = PersonaModel.from_bytes(path.read_bytes()).predict_proba(
        np.zeros(N_FEATURES, np.float32)
    )
    np.testing.assert_allclose(report["probabilities"], expected, atol=1e-5)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ModelError, match="unknown engine 'tflite'; accepted: auto, onnxruntime"):
        PersonaModel.from_bytes(model_bytes("mlp_relu"), engine="tflite")


# -- metadata -----------------------------------------------------------------------------


def test_metadata_props_round_trip() -> None:
    model = onnx.load_from_string(model_bytes("mlp_relu"))
    personas = json.dumps([{"id": "commuter", "name": "Commuter"}, {"id": "é", "name": "☕"}])
    helper.set_model_props(model, {"schema_version": "3", "personas": personas})
    for loaded in both_engines(model.SerializeToString()):
        assert loaded.metadata == {"schema_version": "3", "personas": personas}
    assert PersonaModel.from_bytes(model_bytes("mlp_relu")).metadata == {}


# -- bad models ---------------------------------------------------------------------------


def small_model(
    nodes: list[onnx.NodeProto],
    initializers: dict[str, np.ndarray],
    *,
    input_shape: list[Any] | None = None,
    output: str = "probabilities",
    opset: int = 13,
) -> bytes:
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, input_shape or [None, 4])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, 3])],
        [onnx.numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid(ML, 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()


WEIGHTS = {"W": np.arange(12, dtype=np.float32).reshape(4, 3) / 10}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the ONNX model is empty"),
        (bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)), "ONNX model"),
        (b"\x0a\x05ab", "truncated"),
        (b"not an onnx file at all", "ONNX model"),
        (b"\x08\x07", "no graph found"),
        (b"\x00" * (MAX_MODEL_BYTES + 1), "at most 16,777,216 are accepted"),
    ],
)
def test_malformed_bytes_raise_model_error(data: bytes, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        PersonaModel.from_bytes(data)


@pytest.mark.parametrize("engine", ["onnxruntime", "numpy"])
def test_truncated_model_is_refused(engine: str) -> None:
    data = model_bytes("mlp_relu")
    for cut in (1, 10, len(data) // 2, len(data) - 1):
        with pytest.raises(ModelError):
            PersonaModel.from_bytes(data[:cut], engine=engine)


def test_unsupported_op_is_refused_when_the_graph_is_built() -> None:
    data = small_model(
        [
            helper.make_node("MatMul", ["X", "W"], ["z"]),
            helper.make_node("Erf", ["z"], ["e"], name="smooth"),
            helper.make_node("Softmax", ["e"], ["probabilities"]),
        ],
        WEIGHTS,
    )
    with pytest.raises(
        ModelError,
        match=r"unsupported ONNX op ai\.onnx:Erf in node 'smooth'.*"
        r"supports: .*ai\.onnx:Softmax.*ai\.onnx\.ml:Scaler",
    ):
        NumpyGraph(parse_model(data))
    with pytest.raises(ModelError, match=r"unsupported ONNX op ai\.onnx:Erf"):
        PersonaModel.from_bytes(data, engine="numpy")
    assert PersonaModel.from_bytes(data, engine="onnxruntime").n_classes == 3


def test_zipmap_export_is_refused_with_a_hint() -> None:
    pipe, x = fitted("logreg_binary")
    data = to_onnx(pipe, x[:1]).SerializeToString()
    for engine in ("onnxruntime", "numpy"):
        with pytest.raises(ModelError, match=r"named 'probabilities' .*zipmap off"):
            PersonaModel.from_bytes(data, engine=engine)
    with pytest.raises(ModelError, match=r"ai\.onnx\.ml:ZipMap .*'zipmap': False"):
        NumpyGraph(parse_model(data))


@pytest.mark.parametrize("engine", ["onnxruntime", "numpy"])
def test_outputs_that_are_not_probabilities_are_refused(engine: str) -> None:
    logits = small_model(
        [
            helper.make_node("MatMul", ["X", "W"], ["z"]),
            helper.make_node("Add", ["z", "b"], ["probabilities"]),
        ],
        {**WEIGHTS, "b": np.array([0.2, 0.5, 0.9], np.float32)},
    )
    with pytest.raises(ModelError, match=r"not probabilities .*summing to 1"):
        PersonaModel.from_bytes(logits, engine=engine)


@pytest.mark.parametrize("engine", ["onnxruntime", "numpy"])
def test_feature_count_comes_from_the_weights_when_the_input_has_no_width(engine: str) -> None:
    data = small_model(
        [
            helper.make_node("MatMul", ["X", "W"], ["z"]),
            helper.make_node("Softmax", ["z"], ["probabilities"]),
        ],
        WEIGHTS,
        input_shape=["rows", "features"],
    )
    model = PersonaModel.from_bytes(data, engine=engine)
    assert (model.n_features, model.n_classes) == (4, 3)


# -- bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["onnxruntime", "numpy"])
@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros(24, np.float32), r"shape \(25,\) or \(rows, 25\), got \(24,\)"),
        (np.zeros((2, 26), np.float32), r"got \(2, 26\)"),
        (np.zeros((1, 1, 25), np.float32), r"got \(1, 1, 25\)"),
        (np.float32(1.0), r"got \(\)"),
        (np.zeros(25, np.int64), "expected float32 features .* got dtype int64"),
        (np.array(["a"] * 25), "got dtype <U1"),
        ([[1.0] * 25, [1.0]], "expected a float32 array of features"),
        (np.full(25, np.nan, np.float32), r"must be finite numbers; x\[0\] is nan"),
        (np.r_[np.zeros(3), np.inf, np.zeros(21)].astype(np.float32), r"x\[3\] is inf"),
        (np.r_[np.zeros((2, 25)), [[0] * 24 + [-np.inf]]], r"x\[2, 24\] is -inf"),
        (np.full(25, 1e300), r"x\[0\] is inf"),  # float64 beyond float32
    ],
)
def test_bad_features_raise_model_error(engine: str, x: Any, message: str) -> None:
    model = PersonaModel.from_bytes(model_bytes("mlp_relu"), engine=engine)
    with pytest.raises(ModelError, match=message):
        model.predict_proba(x)


@pytest.mark.parametrize("engine", ["onnxruntime", "numpy"])
def test_huge_finite_features_are_accepted(engine: str) -> None:
    # The one-row path tests finiteness with a dot product, which must not overflow here.
    model = PersonaModel.from_bytes(model_bytes("logreg_multinomial"), engine=engine)
    for x in (np.full(N_FEATURES, 1e30, np.float32), np.full(N_FEATURES, -1e30, np.float32)):
        assert np.isfinite(model.predict_proba(x)).all()


# -- the protobuf reader ------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.array([[1.5, -2.25], [3.0, 1e-30]], np.float32),
        np.array([1.0, -1e300], np.float64),
        np.array([-(2**62), 0, 2**40], np.int64),
        np.array([[-7, 2**31 - 1]], np.int32),
        np.array([-128, 127], np.int8),
        np.array([0, 255], np.uint8),
        np.array([0, 65535], np.uint16),
        np.array([-5, 300], np.int16),
        np.array([True, False, True]),
        np.array([0.5, -65504.0], np.float16),
        np.array([2**32 - 1], np.uint32),
        np.array([2**64 - 1, 3], np.uint64),
        np.array(3.25, np.float32),
        np.zeros((0, 3), np.float32),
    ],
    ids=lambda a: f"{a.dtype}{list(a.shape)}",
)
@pytest.mark.parametrize("raw", [True, False])
def test_initializers_decode_like_onnx(array: np.ndarray, raw: bool) -> None:
    data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    if raw:
        tensor = onnx.numpy_helper.from_array(array, "t")
    else:
        values = array.view(np.uint16) if array.dtype == np.float16 else array
        tensor = helper.make_tensor("t", data_type, array.shape, values.reshape(-1).tolist())
    graph = helper.make_graph([], "g", [], [], [tensor])
    parsed = parse_model(helper.make_model(graph).SerializeToString())
    decoded = parsed.initializers["t"]
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, onnx.numpy_helper.to_array(tensor))


def test_string_tensors_and_every_attribute_type_decode() -> None:
    strings = helper.make_tensor("s", TensorProto.STRING, [2], [b"home", "caf\xe9".encode()])
    node = helper.make_node(
        "Custom",
        ["a", ""],
        ["b"],
        name="n",
        domain="example.org",
        f=0.5,
        i=-3,
        s="SOFTMAX",
        t=onnx.numpy_helper.from_array(np.array([1, 2], np.int64)),
        floats=[0.25, -1.0],
        ints=[1, -1, 2**40],
        strings=["x", "y"],
        empty=helper.make_graph([], "sub", [], []),
    )
    graph = helper.make_graph([node], "g", [], [], [strings])
    parsed = parse_model(helper.make_model(graph).SerializeToString())
    assert parsed.initializers["s"].tolist() == ["home", "café"]
    (decoded,) = parsed.nodes
    assert (decoded.op_type, decoded.domain, decoded.name) == ("Custom", "example.org", "n")
    assert (decoded.inputs, decoded.outputs) == (("a", ""), ("b",))
    attributes = dict(decoded.attributes)
    np.testing.assert_array_equal(attributes.pop("t"), [1, 2])
    assert attributes == {
        "f": 0.5,
        "i": -3,
        "s": "SOFTMAX",
        "floats": (0.25, -1.0),
        "ints": (1, -1, 2**40),
        "strings": ("x", "y"),
    }  # the graph attribute is skipped: evaluation never needs one


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_packed_and_unpacked_repeated_fields_decode_alike() -> None:
    # onnx.proto (proto2) packs tensor data but not attribute lists; writers may do either.
    values = [3, -1, 2**40, 0]
    unpacked = b"".join(_varint(8 << 3) + _varint(v) for v in values)
    packed = _field(8, b"".join(_varint(v) for v in values))
    floats = np.array([0.5, -2.0], "<f4")
    unpacked_floats = b"".join(_varint(7 << 3 | 5) + f.tobytes() for f in floats)
    packed_floats = _field(7, floats.tobytes())
    for ints, fs in ((unpacked, unpacked_floats), (packed, packed_floats)):
        node = _field(4, b"Op") + _field(5, _field(1, b"ints") + ints)
        node += _field(5, _field(1, b"floats") + fs)
        parsed = parse_model(_field(7, _field(1, node)))
        assert parsed.nodes[0].attributes == {"ints": tuple(values), "floats": (0.5, -2.0)}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_field(7, _field(5, _varint(1 << 3) + b"\xff" * 11)), "longer than 10 bytes"),
        (_field(7, _field(1, _field(4, b"\xff\xfe"))), "not UTF-8"),
        (_field(7, b"\x0b"), "wire type 3"),
        (
            _field(7, _field(5, _field(1, _varint(1 << 40)) + _varint(2 << 3) + b"\x01")),
            "has an invalid shape|holds 0 values",
        ),
        (_field(7, _field(5, _varint(2 << 3) + b"\x10")), "data type 16"),
        (_field(7, _field(5, _varint(2 << 3) + b"\x01" + _field(9, b"abc"))), "raw_data"),
        (_field(14, _field(1, b"k")) * 2 + _field(7, b""), "repeat the key 'k'"),
        (_field(7, _field(1, _field(1, b"x"))), "node without an op_type"),
    ],
)
def test_malformed_messages_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        parse_model(data)


def valid_models() -> list[bytes]:
    return [model_bytes("logreg_binary"), model_bytes("mlp_relu_binary")]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise_anything_but_model_error(data: bytes) -> None:
    with contextlib.suppress(ModelError):
        parse_model(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_models_never_raise_anything_but_model_error(data: st.DataObject) -> None:
    original = data.draw(st.sampled_from(valid_models()))
    damaged = bytearray(original[: data.draw(st.integers(1, len(original)))])
    for _ in range(data.draw(st.integers(0, 4))):
        position = data.draw(st.integers(0, len(damaged) - 1))
        damaged[position] ^= 1 << data.draw(st.integers(0, 7))
    try:
        model = PersonaModel.from_bytes(bytes(damaged), engine="numpy")
    except ModelError:
        return
    model.predict_proba(np.zeros(model.n_features, np.float32))


# -- single operators against onnxruntime -------------------------------------------------

RNG = np.random.default_rng(5)
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def op_case(
    op: str,
    inputs: dict[str, np.ndarray],
    outputs: dict[str, int],
    domain: str = "",
    opset: int = 13,
    **attributes: Any,
) -> Any:
    return pytest.param(op, inputs, outputs, domain, opset, attributes, id=f"{op}-{opset}")


OP_CASES = [
    op_case("Softmax", {"x": RNG.normal(size=(2, 3, 4))}, {"y": F}, opset=11),
    op_case("Softmax", {"x": RNG.normal(size=(2, 3, 4))}, {"y": F}, opset=11, axis=-2),
    op_case("Softmax", {"x": RNG.normal(size=(2, 3, 4)) * 50}, {"y": F}),
    op_case("Softmax", {"x": RNG.normal(size=(2, 3, 4))}, {"y": F}, axis=0),
    op_case(
        "ArgMax",
        {"x": np.array([[1, 3, 3], [2, 2, 0]])},
        {"y": I64},
        axis=1,
        keepdims=0,
        select_last_index=1,
    ),
    op_case("ArgMax", {"x": np.array([[1, 3, 3], [2, 2, 0]])}, {"y": I64}),
    op_case(
        "Gemm",
        {"a": RNG.normal(size=(3, 2)), "b": RNG.normal(size=(4, 3)), "c": RNG.normal(size=(1, 4))},
        {"y": F},
        alpha=0.5,
        beta=2.0,
        transA=1,
        transB=1,
    ),
    op_case("Gemm", {"a": RNG.normal(size=(2, 3)), "b": RNG.normal(size=(3, 4))}, {"y": F}),
    op_case("MatMul", {"a": RNG.normal(size=(2, 3)), "b": RNG.normal(size=(3, 4))}, {"y": F}),
    op_case("Add", {"a": RNG.normal(size=(2, 3)), "b": RNG.normal(size=(1, 3))}, {"y": F}),
    op_case("Sub", {"a": RNG.normal(size=(1,)), "b": RNG.normal(size=(2, 3))}, {"y": F}),
    op_case("Mul", {"a": RNG.normal(size=(2, 3)), "b": RNG.normal(size=(2, 3))}, {"y": F}),
    op_case("Div", {"a": RNG.normal(size=(2, 3)), "b": RNG.normal(size=(2, 3))}, {"y": F}),
    op_case("Div", {"a": np.array([7, -7, 7, -7]), "b": np.array([2, 2, -2, -2])}, {"y": I64}),
    op_case("Relu", {"x": RNG.normal(size=(2, 3))}, {"y": F}),
    op_case("Tanh", {"x": RNG.normal(size=(2, 3)) * 30}, {"y": F}),
    op_case("Sigmoid", {"x": np.array([[-200.0, -20, -1, 0, 1, 20, 200]])}, {"y": F}),
    op_case("Identity", {"x": RNG.normal(size=(2, 3))}, {"y": F}),
    op_case("Cast", {"x": np.array([[2.7, -2.7, 0.0]])}, {"y": I64}, to=I64),
    op_case("Cast", {"x": np.array([1, -3])}, {"y": F}, to=F),
    op_case("Reshape", {"x": RNG.normal(size=(2, 3, 4)), "s": np.array([0, -1])}, {"y": F}),
    op_case(
        "Concat",
        {"a": RNG.normal(size=(2, 1)), "b": RNG.normal(size=(2, 3)), "c": RNG.normal(size=(2, 2))},
        {"y": F},
        axis=-1,
    ),
    op_case("Flatten", {"x": RNG.normal(size=(2, 3, 4))}, {"y": F}, axis=2),
    op_case("Flatten", {"x": RNG.normal(size=(2, 3, 4))}, {"y": F}),
    op_case("Scaler", {"x": RNG.normal(size=(2, 3))}, {"y": F}, ML, offset=[0.5], scale=[2.0]),
    op_case(
        "Scaler",
        {"x": RNG.normal(size=(2, 3))},
        {"y": F},
        ML,
        offset=[0.5, 1.0, -1.0],
        scale=[2.0, 0.5, 3.0],
    ),
    *[
        op_case(
            "Normalizer",
            {"x": np.array([[1.0, -3.0, 2.0], [0.0, 0.0, 0.0]])},
            {"y": F},
            ML,
            norm=norm,
        )
        for norm in ("MAX", "L1", "L2")
    ],
    *[
        op_case(
            "LinearClassifier",
            {"x": RNG.normal(size=(5, 4))},
            {"label": I64, "p": F},
            ML,
            coefficients=RNG.normal(size=12).tolist(),
            intercepts=[0.1, -0.2, 0.3],
            classlabels_ints=[4, 7, 9],
            post_transform=transform,
        )
        for transform in ("NONE", "SOFTMAX", "LOGISTIC")
    ],
    op_case(
        "LinearClassifier",
        {"x": RNG.normal(size=(4,))},
        {"label": TensorProto.STRING, "p": F},
        ML,
        coefficients=RNG.normal(size=8).tolist(),
        intercepts=[0.0, 0.5],
        classlabels_strings=["home", "work"],
        post_transform="LOGISTIC",
    ),
    op_case(
        "ArrayFeatureExtractor",
        {"x": np.array([3, 5, 7]), "i": np.array([[2], [0]])},
        {"y": I64},
        ML,
    ),
    op_case(
        "ArrayFeatureExtractor", {"x": RNG.normal(size=(2, 4)), "i": np.array([3, 1])}, {"y": F}, ML
    ),
]


@pytest.mark.parametrize(("op", "inputs", "outputs", "domain", "opset", "attributes"), OP_CASES)
def test_each_operator_matches_onnxruntime(
    op: str,
    inputs: dict[str, np.ndarray],
    outputs: dict[str, int],
    domain: str,
    opset: int,
    attributes: dict[str, Any],
) -> None:
    feeds = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in inputs.items()}
    graph = helper.make_graph(
        [helper.make_node(op, list(feeds), list(outputs), domain=domain, **attributes)],
        op,
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), None)
            for k, v in feeds.items()
        ],
        [helper.make_tensor_value_info(k, t, None) for k, t in outputs.items()],
    )
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid(ML, 1)]
    data = helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = dict(zip(outputs, session.run(None, feeds), strict=True))
    actual = NumpyGraph(parse_model(data)).run(feeds)
    for name in outputs:
        assert actual[name].shape == expected[name].shape, name
        if outputs[name] == F:
            assert actual[name].dtype == np.float32, name
            np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(actual[name], expected[name])


def test_run_time_failures_name_the_node() -> None:
    data = small_model(
        [
            helper.make_node("MatMul", ["X", "W"], ["z"], name="layer1"),
            helper.make_node("Softmax", ["z"], ["probabilities"]),
        ],
        WEIGHTS,
    )
    graph = NumpyGraph(parse_model(data))
    with pytest.raises(ModelError, match=r"ONNX node 'layer1' \(ai\.onnx:MatMul\) failed"):
        graph.run({"X": np.zeros((1, 5), np.float32)})
    with pytest.raises(ModelError, match=r"missing model input 'X'"):
        graph.run({})


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([helper.make_node("Relu", ["nowhere"], ["probabilities"])], "reads 'nowhere'"),
        (
            [
                helper.make_node("Relu", ["b"], ["a"]),
                helper.make_node("Relu", ["a"], ["b"]),
                helper.make_node("Relu", ["X"], ["probabilities"]),
            ],
            "has a cycle",
        ),
        (
            [
                helper.make_node("Relu", ["X"], ["W"]),
                helper.make_node("Relu", ["X"], ["probabilities"]),
            ],
            "defines 'W' twice",
        ),
        ([helper.make_node("Relu", ["X"], ["other"])], r"never computes \['probabilities'\]"),
        ([helper.make_node("Softmax", ["X"], ["probabilities"], axis="1")], "should be int"),
        (
            [helper.make_node("Normalizer", ["X"], ["probabilities"], domain=ML, norm="L3")],
            "norm='L3' is not supported; supported: MAX, L1, L2",
        ),
        (
            [
                helper.make_node(
                    "LinearClassifier",
                    ["X"],
                    ["l", "probabilities"],
                    domain=ML,
                    coefficients=[1.0] * 4,
                    intercepts=[0.0],
                    classlabels_ints=[0, 1],
                )
            ],
            "at least 2 classes",
        ),
        ([helper.make_node("Add", ["X"], ["probabilities"])], "has 1 inputs and 1 outputs"),
    ],
)
def test_invalid_graphs_are_refused_when_built(nodes: list[onnx.NodeProto], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        NumpyGraph(parse_model(small_model(nodes, WEIGHTS)))
