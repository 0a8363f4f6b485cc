"""The raw features a pushed SavedModel parses, and single values and tf.Examples checked against them.

Each feature's name and whether the model parses it as int64 or float32 is read from the SavedModel itself
(:func:`read_feature_spec`: the ``ParseExampleV2`` op of ``serving_default``), because pushed models parse integer
CSV columns as int64 and a float-valued ``tf.Example`` would fail to parse. Feature order (for ``predict_features``)
is the natural order of the names (``px_2`` before ``px_10``), the order the trainer exports.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.features import SERVING_SIGNATURE, natural_key
from serving.store import SAVED_MODEL_FILE

INT64 = "int64"
FLOAT32 = "float32"
_DT_FLOAT, _DT_INT64 = 1, 9  # tensorflow.core.framework.types_pb2 values


class RequestError(ValueError):
    """A request TF Serving (or the model) would reject; the message says why in one sentence."""


@dataclass(frozen=True)
class RawFeature:
    """How ``serving_default`` parses one feature: ``dtype`` is INT64 or FLOAT32, ``shape`` () or (1,)."""

    name: str
    dtype: str
    shape: tuple[int, ...] = ()


FeatureSpec = dict  # name -> RawFeature, in the model's feature order


def read_feature_spec(model_dir: str) -> FeatureSpec:
    """The raw features ``serving_default`` parses from each tf.Example, read from the SavedModel graph.

    Returns ``{name: RawFeature}`` in natural name order (the order of ``predict_features`` columns).
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(model_dir, SAVED_MODEL_FILE), "rb") as f:
        saved.ParseFromString(f.read())
    for meta in saved.meta_graphs:
        if SERVING_SIGNATURE not in meta.signature_def:
            continue
        for function in meta.graph_def.library.function:
            nodes = {node.name: node for node in function.node_def}
            for node in function.node_def:
                if node.op != "ParseExampleV2" or node.attr["num_sparse"].i:
                    continue
                keys_node = nodes.get(node.input[3].split(":")[0])
                if keys_node is None or keys_node.op != "Const":
                    continue
                names = [key.decode() for key in keys_node.attr["value"].tensor.string_val]
                dtypes = list(node.attr["Tdense"].list.type)
                shapes = [tuple(d.size for d in s.dim) for s in node.attr["dense_shapes"].list.shape]
                spec = {}
                for name, dtype, shape in zip(names, dtypes, shapes, strict=True):
                    if dtype not in (_DT_FLOAT, _DT_INT64) or int(np.prod(shape)) != 1:
                        raise ValueError(f"feature {name!r} of {model_dir} is not a single int64/float32 value.")
                    spec[name] = RawFeature(name, INT64 if dtype == _DT_INT64 else FLOAT32, shape)
                return {name: spec[name] for name in sorted(spec, key=natural_key)}
    raise ValueError(f"{model_dir} has no '{SERVING_SIGNATURE}' signature that parses dense tf.Example features.")



def to_number(value: Any, feature: RawFeature) -> int | float:
    """One raw value (number or numeric string) as the Python number the model parses; RequestError otherwise."""
    if isinstance(value, bool) or value is None:
        raise RequestError(f"feature {feature.name!r} has a non-numeric value {value!r}.")
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


def build_example(values: Mapping[str, Any], spec: FeatureSpec, extra: Mapping[str, Any] | None = None) -> bytes:
    """A serialized tf.Example with every spec feature (int64_list or float_list as the model parses it).

    ``values`` may hold numbers or numeric strings (e.g. a CSV row); ``extra`` features (e.g. the id) are added as
    bytes/int/float lists and ignored by the model.
    """
    import tensorflow as tf

    feature = {}
    for name, raw in spec.items():
        if name not in values:
            raise RequestError(f"feature {name!r} is missing.")
        number = to_number(values[name], raw)
        feature[name] = (tf.train.Feature(int64_list=tf.train.Int64List(value=[number])) if raw.dtype == INT64
                         else tf.train.Feature(float_list=tf.train.FloatList(value=[number])))
    for name, value in (extra or {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        elif isinstance(value, float):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        else:
            data = value if isinstance(value, bytes) else str(value).encode()
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def check_example(serialized: bytes, spec: FeatureSpec) -> None:
    """RequestError unless ``serialized`` is a tf.Example the model parses: each feature, right kind, 1 finite value."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        example = tf.train.Example.FromString(serialized)
    except (DecodeError, RuntimeWarning) as err:
        raise RequestError(f"the payload is not a serialized tf.Example ({err}).") from None
    feats = example.features.feature
    for name, raw in spec.items():
        if name not in feats:
            raise RequestError(f"the tf.Example has no feature {name!r}.")
        kind = feats[name].WhichOneof("kind")
        want = "int64_list" if raw.dtype == INT64 else "float_list"
        if kind != want:
            raise RequestError(f"feature {name!r} is a {kind or 'empty feature'}, but the model parses a {want}.")
        value = list(getattr(feats[name], kind).value)
        if len(value) != 1:
            raise RequestError(f"feature {name!r} has {len(value)} values; the model expects exactly 1.")
        if raw.dtype == FLOAT32 and not math.isfinite(value[0]):
            raise RequestError(f"feature {name!r} is {value[0]} (values must be finite).")

