"""The raw features a pushed SavedModel parses, and single values and tf.Examples checked against them.

Each feature's name, kind (int64, float32 or string) and whether it may be missing is read from the SavedModel itself
(:func:`read_feature_spec`: the ``ParseExampleV2`` op of ``serving_default``), because pushed models parse integer
CSV columns as int64 (a float-valued ``tf.Example`` would fail to parse), text (categorical) columns as bytes, and
columns that had missing values in the training data as sparse (``VarLenFeature``) features that a tf.Example may
leave out. Feature order (for ``predict_features``) is the natural order of the names (``px_2`` before ``px_10``),
the order the trainer exports.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from model.features import MISSING_TOKENS, SERVING_SIGNATURE, natural_key
from serving.store import SAVED_MODEL_FILE

INT64 = "int64"
FLOAT32 = "float32"
STRING = "string"
_DTYPES = {1: FLOAT32, 9: INT64, 7: STRING}  # tensorflow.core.framework.types_pb2 DT_FLOAT, DT_INT64, DT_STRING
NO_DENSE_SIGNATURE = ("the model has text (categorical) columns, so it has no predict_features signature; send "
                      "tf.Examples to serving_default.")


class RequestError(ValueError):
    """A request TF Serving (or the model) would reject; the message says why in one sentence."""


@dataclass(frozen=True)
class RawFeature:
    """How ``serving_default`` parses one feature: ``dtype`` is INT64, FLOAT32 or STRING, ``shape`` () or (1,) for a
    dense feature (() for a sparse one); ``optional`` is True when a tf.Example may leave it out (a sparse
    ``VarLenFeature``, a column that had missing values in the training data, or a dense one with a default)."""

    name: str
    dtype: str
    shape: tuple[int, ...] = ()
    optional: bool = False


FeatureSpec = dict  # name -> RawFeature, in the model's feature order


def read_feature_spec(model_dir: str) -> FeatureSpec:
    """The raw features ``serving_default`` parses from each tf.Example, read from the SavedModel graph.

    Returns ``{name: RawFeature}`` in natural name order (the order of ``predict_features`` columns): the dense keys
    (attrs ``Tdense``, ``dense_shapes``; required unless their ``dense_defaults`` input has a value) and the sparse
    keys (attr ``sparse_types``; optional) of the ``ParseExampleV2`` op, whose inputs are ``serialized, names,
    sparse_keys, dense_keys, ragged_keys, dense_defaults...``.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(model_dir, SAVED_MODEL_FILE), "rb") as f:
        saved.ParseFromString(f.read())
    for meta in saved.meta_graphs:
        if SERVING_SIGNATURE not in meta.signature_def:
            continue
        for function in _serving_functions(meta):
            nodes = {node.name: node for node in function.node_def}

            def const(ref: str, nodes=nodes):
                node = nodes.get(ref.split(":")[0])
                return node.attr["value"].tensor if node is not None and node.op == "Const" else None

            for node in function.node_def:
                if node.op != "ParseExampleV2":
                    continue
                sparse_keys, dense_keys = const(node.input[2]), const(node.input[3])
                if sparse_keys is None or dense_keys is None or node.attr["ragged_value_types"].list.type:
                    continue
                spec = {}
                sparse_types = list(node.attr["sparse_types"].list.type)
                for key, dtype in zip(sparse_keys.string_val, sparse_types, strict=True):
                    spec[key.decode()] = (dtype, (), True)
                dense_types = list(node.attr["Tdense"].list.type)
                shapes = [tuple(d.size for d in s.dim) for s in node.attr["dense_shapes"].list.shape]
                for i, (key, dtype, shape) in enumerate(zip(dense_keys.string_val, dense_types, shapes, strict=True)):
                    default = const(node.input[5 + i])
                    has_default = default is not None and int(np.prod([d.size for d in default.tensor_shape.dim])) > 0
                    if int(np.prod(shape)) != 1:
                        raise ValueError(f"feature {key.decode()!r} of {model_dir} is not a single value.")
                    spec[key.decode()] = (dtype, shape, has_default)
                features = {}
                for name, (dtype, shape, optional) in spec.items():
                    if dtype not in _DTYPES:
                        raise ValueError(f"feature {name!r} of {model_dir} is not an int64, float32 or string value.")
                    features[name] = RawFeature(name, _DTYPES[dtype], shape, optional)
                return {name: features[name] for name in sorted(features, key=natural_key)}
    raise ValueError(f"{model_dir} has no '{SERVING_SIGNATURE}' signature that parses tf.Example features.")


def _called(nodes) -> list[str]:
    """The names of the functions ``nodes`` call (attrs such as ``f`` of ``StatefulPartitionedCall``)."""
    names = []
    for node in nodes:
        for attr in node.attr.values():
            if attr.WhichOneof("value") == "func":
                names.append(attr.func.name)
            elif attr.WhichOneof("value") == "list":
                names.extend(func.name for func in attr.list.func)
    return names


def _serving_functions(meta) -> list:
    """The graph functions ``serving_default`` runs, callers first (every function if the call graph is not found),
    so that another signature's parsing (e.g. a ``transform_features`` signature) is never read instead."""
    library = {function.signature.name: function for function in meta.graph_def.library.function}
    graph = {node.name: node for node in meta.graph_def.node}
    outputs = [t.name.split(":")[0] for t in meta.signature_def[SERVING_SIGNATURE].outputs.values()]
    queue, seen, order = _called(graph[name] for name in outputs if name in graph), set(), []
    while queue:
        name = queue.pop(0)
        if name in seen or name not in library:
            continue
        seen.add(name)
        order.append(library[name])
        queue.extend(_called(library[name].node_def))
    return order or list(library.values())


def model_signatures(model_dir: str) -> set[str]:
    """The signature names of the SavedModel in ``model_dir`` (read from its graph, without loading it; internal
    ones such as ``__saved_model_init_op`` left out)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(model_dir, SAVED_MODEL_FILE), "rb") as f:
        saved.ParseFromString(f.read())
    return {name for meta in saved.meta_graphs for name in meta.signature_def if not name.startswith("__")}


def has_text(spec: FeatureSpec) -> bool:
    """True when a feature is text (categorical): such a model has only the tf.Example signature."""
    return any(feature.dtype == STRING for feature in spec.values())


def is_missing(value: Any) -> bool:
    """True for a missing value: None, a float NaN, or a string (or bytes) spelling of one (empty, NA, NaN, null...)."""
    if value is None:
        return True
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value.strip().lower() in MISSING_TOKENS
    return isinstance(value, float | np.floating) and math.isnan(value)


def missing_error(feature: RawFeature) -> RequestError:
    """The one sentence for a missing value of a feature the model requires."""
    return RequestError(f"feature {feature.name!r} is missing and the model requires it.")


def to_number(value: Any, feature: RawFeature) -> int | float:
    """One raw value (number or numeric string) as the Python number the model parses; RequestError otherwise."""
    if isinstance(value, bool) or value is None:
        raise RequestError(f"feature {feature.name!r} has a non-numeric value {value!r}.")
    if isinstance(value, Decimal):  # a Parquet or database decimal column: parsed from its text, as staging wrote it
        value = str(value)
    if isinstance(value, str | bytes):
        text = value.decode() if isinstance(value, bytes) else value
        if not text.strip():
            raise RequestError(f"feature {feature.name!r} is empty.")
        try:
            value = float(text) if feature.dtype == FLOAT32 or not text.strip().lstrip("+-").isdigit() else int(text)
        except ValueError:
            raise RequestError(f"feature {feature.name!r} has a non-numeric value {text[:40]!r}.") from None
    if not isinstance(value, int | float | np.integer | np.floating):
        raise RequestError(f"feature {feature.name!r} has a non-numeric value {str(value)[:40]!r}.")
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        raise RequestError(f"feature {feature.name!r} is {value} (values must be finite).")
    if feature.dtype == INT64:
        if float(value) != int(value):
            raise RequestError(f"feature {feature.name!r} is {value}, but the model parses it as an integer.")
        if not -(2**63) <= int(value) < 2**63:
            raise RequestError(f"feature {feature.name!r} is {value}, outside the int64 range.")
        return int(value)
    if abs(float(value)) > np.finfo(np.float32).max:
        raise RequestError(f"feature {feature.name!r} is {value}, outside the float32 range.")
    return float(value)


def to_value(value: Any, feature: RawFeature) -> int | float | bytes | None:
    """One raw value as the model parses it: a number (INT64/FLOAT32), bytes (STRING; numbers become their ``str``)
    or None for a missing value (:func:`is_missing`) of an optional feature; RequestError otherwise."""
    if is_missing(value):
        if feature.optional:
            return None
        raise missing_error(feature)
    if feature.dtype == STRING:
        return value if isinstance(value, bytes) else str(value).encode("utf-8")
    return to_number(value, feature)


def _feature(value: int | float | bytes, dtype: str):
    import tensorflow as tf

    if dtype == STRING:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    if dtype == INT64:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))


def build_example(values: Mapping[str, Any], spec: FeatureSpec, extra: Mapping[str, Any] | None = None) -> bytes:
    """A serialized tf.Example of ``values`` as the model parses them (int64_list, float_list or bytes_list).

    ``values`` may hold numbers, numeric strings (e.g. a CSV row) and, for text features, any string. A missing value
    (absent, None, NaN or a missing spelling: empty, NA, NaN, null...) of an optional feature is left out of the
    tf.Example, as ExampleGen leaves it out; of a required feature it is a RequestError. ``extra`` features (e.g. the
    id) are added as bytes/int/float lists and ignored by the model.
    """
    import tensorflow as tf

    feature = {}
    for name, raw in spec.items():
        value = to_value(values.get(name), raw)
        if value is not None:
            feature[name] = _feature(value, raw.dtype)
    for name, value in (extra or {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        elif isinstance(value, float):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        else:
            data = value if isinstance(value, bytes) else str(value).encode()
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
    # deterministic: the feature map in key order, so the same row gives the same bytes (and request body) each time
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


_KINDS = {INT64: "int64_list", FLOAT32: "float_list", STRING: "bytes_list"}


def number_kind_changes(spec: FeatureSpec, dtypes: Mapping[str, str]) -> dict[str, str]:
    """The features that ``spec`` (a model) parses as one number kind and ``dtypes`` (the data's raw features, name ->
    int64, float32 or string) holds as the other: name -> the kind the model parses."""
    numbers = (INT64, FLOAT32)
    return {name: raw.dtype for name, raw in spec.items()
            if raw.dtype in numbers and dtypes.get(name) in numbers and dtypes[name] != raw.dtype}


_INT64 = np.iinfo(np.int64)


def conform_records(records: list[bytes], spec: FeatureSpec, dtypes: Mapping[str, str],
                    fills: Mapping[str, int | float | bytes] | None = None) -> list[bytes]:
    """``records`` (serialized tf.Examples of data whose raw features are ``dtypes``) as the model of ``spec`` parses
    them: each number feature in the kind the model parses, where the two differ (`number_kind_changes`: an int64
    value becomes a float, a float the nearest whole number, halves to even as Python's ``round``; beyond the int64
    range the range's end; NaN left out), and each feature of ``fills`` (name -> a value of the model's kind) that a
    record leaves blank set to that value. With nothing to change the records are returned as they are, unparsed.

    ExampleGen infers a CSV column's kind from each night's values (whole numbers one night, a decimal the next), so
    the champion, trained on another night, may parse the other number kind; it may also need a value in every row
    of a column that has blanks tonight (`serving.training_statistics.blank_fills`). Text where it parses numbers is
    not converted (`text_number_changes`)."""
    changes = number_kind_changes(spec, dtypes)
    if not changes and not fills:
        return records
    import tensorflow as tf

    out = []
    for record in records:
        example = tf.train.Example.FromString(record)
        feats = example.features.feature
        for name, dtype in changes.items():
            kind = feats[name].WhichOneof("kind") if name in feats else None
            if kind is None or kind == _KINDS[dtype] or kind == _KINDS[STRING]:
                continue
            values = list(getattr(feats[name], kind).value)
            if dtype == FLOAT32:
                feats[name].float_list.value[:] = [float(v) for v in values]
            else:
                feats[name].int64_list.value[:] = [
                    int(_INT64.max) if v >= 2.0**63 else int(_INT64.min) if v < -(2.0**63) else round(v)
                    for v in values if not math.isnan(v)]
        for name, value in (fills or {}).items():
            kind = feats[name].WhichOneof("kind") if name in feats else None
            if kind is None or not getattr(feats[name], kind).value:
                feats[name].CopyFrom(_feature(value, spec[name].dtype))
        out.append(example.SerializeToString(deterministic=True))
    return out


def text_number_changes(spec: FeatureSpec, dtypes: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """The features that ``spec`` (a model) parses as numbers and ``dtypes`` (another model's or a run's raw features:
    name -> int64, float32 or string) holds as text, or the other way round: (name, kind in ``dtypes``, kind in
    ``spec``), each kind "text" or "numbers"."""
    def kind(dtype: str) -> str:
        return "text" if dtype == STRING else "numbers"

    return [(name, kind(dtypes[name]), kind(raw.dtype)) for name, raw in spec.items()
            if name in dtypes and kind(dtypes[name]) != kind(raw.dtype)]


def check_example(serialized: bytes, spec: FeatureSpec) -> None:
    """RequestError unless ``serialized`` is a tf.Example the model parses: each required feature with 1 value of the
    right kind (finite for floats), each optional one absent, empty or the same."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        example = tf.train.Example.FromString(serialized)
    except (DecodeError, RuntimeWarning) as err:
        raise RequestError(f"the payload is not a serialized tf.Example ({err}).") from None
    feats = example.features.feature
    for name, raw in spec.items():
        if name not in feats:
            if raw.optional:
                continue
            raise RequestError(f"the tf.Example has no feature {name!r}, and the model requires it.")
        kind = feats[name].WhichOneof("kind")
        if kind is None and raw.optional:
            continue
        want = _KINDS[raw.dtype]
        if kind != want:
            raise RequestError(f"feature {name!r} is a {kind or 'empty feature'}, but the model parses a {want}.")
        value = list(getattr(feats[name], kind).value)
        if len(value) != 1 and not (raw.optional and not value):
            raise RequestError(f"feature {name!r} has {len(value)} values; the model expects exactly 1.")
        if raw.dtype == FLOAT32 and value and not math.isfinite(value[0]):
            raise RequestError(f"feature {name!r} is {value[0]} (values must be finite).")
