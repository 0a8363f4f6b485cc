"""TF Serving REST contract for the GMVAE SavedModel: build ``:predict`` bodies, parse them, format responses.

TF Serving's REST API (``POST /v1/models/<name>[/versions/<v>]:predict``) takes a JSON body in one of two formats:

* row format: ``{"signature_name": ..., "instances": [row, ...]}``, answered with ``{"predictions": [...]}``;
* columnar format: ``{"signature_name": ..., "inputs": {input_key: [...]}}``, answered with ``{"outputs": {...}}``.

Our model has two signatures (names in :mod:`model.features`):

* ``serving_default``: input ``examples``, a 1-D string tensor of serialized ``tf.Example`` s. Binary JSON values are
  sent base64-encoded as ``{"b64": "..."}``.
* ``predict_features``: input ``features``, dense float32 ``[B, F]`` in the model's feature order.

:func:`parse_request` turns a body into exactly the tensors TF Serving feeds the signature (numpy arrays), rejecting
anything TF Serving or the model would reject with one :class:`RequestError` sentence. It is stricter than TF Serving in
one way: rows with NaN/inf values, or tf.Examples that lack a feature or carry it with the wrong kind, are rejected
here instead of producing NaN scores or a parse error deep in the graph.

The raw feature spec (each feature's name and whether the model parses it as int64 or float32) is read from the
SavedModel itself (:func:`read_feature_spec`: the ``ParseExampleV2`` op of ``serving_default``), because pushed models
parse integer CSV columns as int64 and a float-valued ``tf.Example`` would fail to parse. Feature order (for
``predict_features``) is the natural order of the names (``px_2`` before ``px_10``), the order the trainer exports.

CLI: ``python -m pipeline.serving_request --model DIR --csv FILE --rows 2 [--columnar] [--predict]`` prints the body
a client would send (and, with ``--predict``, the response TF Serving would return, computed locally).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.features import (
    FEATURES_INPUT_KEY,
    FEATURES_SIGNATURE,
    OUTPUT_KEYS,
    SERVING_INPUT_KEY,
    SERVING_SIGNATURE,
    natural_key,
)

INT64 = "int64"
FLOAT32 = "float32"
_DT_FLOAT, _DT_INT64 = 1, 9  # tensorflow.core.framework.types_pb2 values
_INPUT_KEYS = {SERVING_SIGNATURE: SERVING_INPUT_KEY, FEATURES_SIGNATURE: FEATURES_INPUT_KEY}
_BODY_KEYS = {"signature_name", "instances", "inputs"}


class RequestError(ValueError):
    """A request TF Serving (or the model) would reject; the message says why in one sentence."""


@dataclass(frozen=True)
class RawFeature:
    """How ``serving_default`` parses one feature: ``dtype`` is INT64 or FLOAT32, ``shape`` () or (1,)."""

    name: str
    dtype: str
    shape: tuple[int, ...] = ()


FeatureSpec = dict  # name -> RawFeature, in the model's feature order


# --------------------------------------------------------------------------------------------------------------------
# The model: where it is and what it parses
# --------------------------------------------------------------------------------------------------------------------


def resolve_model_dir(path: str) -> str:
    """A SavedModel directory: ``path`` itself, or the highest integer version under a TF Serving base directory."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"model {path!r} does not exist.")
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    names = [name.rstrip("/") for name in tf.io.gfile.listdir(path)]
    versions = sorted(int(name) for name in names if name.isdigit())
    for version in reversed(versions):
        candidate = os.path.join(path, str(version))
        if tf.io.gfile.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise FileNotFoundError(f"{path!r} is neither a SavedModel (no saved_model.pb) nor a serving directory with "
                            "integer versions holding one.")


def read_feature_spec(model_dir: str) -> FeatureSpec:
    """The raw features ``serving_default`` parses from each tf.Example, read from the SavedModel graph.

    Returns ``{name: RawFeature}`` in natural name order (the order of ``predict_features`` columns).
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(model_dir, "saved_model.pb"), "rb") as f:
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


# --------------------------------------------------------------------------------------------------------------------
# Values and tf.Examples
# --------------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode("ascii")}


def examples_body(rows: Iterable[Mapping[str, Any]], spec: FeatureSpec, columnar: bool = False) -> dict:
    """The ``:predict`` body for ``serving_default`` from feature dicts (one tf.Example per row)."""
    payload = [_b64(build_example(row, spec)) for row in rows]
    if columnar:
        return {"signature_name": SERVING_SIGNATURE, "inputs": {SERVING_INPUT_KEY: payload}}
    return {"signature_name": SERVING_SIGNATURE, "instances": payload}


def features_body(rows: Iterable[Mapping[str, Any]], spec: FeatureSpec, columnar: bool = False) -> dict:
    """The ``:predict`` body for ``predict_features`` from feature dicts (dense rows in the model's feature order)."""
    matrix = [[float(to_number(row.get(name), raw)) for name, raw in spec.items()]
              for row in rows]
    if columnar:
        return {"signature_name": FEATURES_SIGNATURE, "inputs": {FEATURES_INPUT_KEY: matrix}}
    return {"signature_name": FEATURES_SIGNATURE, "instances": matrix}


@dataclass(frozen=True)
class ParsedRequest:
    """What TF Serving feeds the signature: ``inputs`` maps the input key to a numpy batch."""

    signature_name: str
    inputs: dict[str, np.ndarray]
    row_format: bool


def _load_body(body: str | bytes | Mapping) -> Mapping:
    if isinstance(body, Mapping):
        return body
    try:
        loaded = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestError(f"the body is not valid JSON ({str(err)[:80]}).") from None
    if not isinstance(loaded, dict):
        raise RequestError(f"the body must be a JSON object, not {type(loaded).__name__}.")
    return loaded


def _unwrap_named(item: Any, key: str) -> Any:
    """Row-format items may be the value itself or ``{input_key: value}`` (TF Serving accepts both)."""
    if isinstance(item, dict) and set(item) == {key}:
        return item[key]
    return item


def _decode_b64(item: Any, index: int) -> bytes:
    if not isinstance(item, dict) or set(item) != {"b64"} or not isinstance(item["b64"], str):
        raise RequestError(f"example {index} must be an object {{\"b64\": \"<base64 tf.Example>\"}}.")
    try:
        return base64.b64decode(item["b64"].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise RequestError(f"example {index} is not valid base64.") from None


def parse_request(
    body: str | bytes | Mapping,
    spec: FeatureSpec | None = None,
    num_features: int | None = None,
) -> ParsedRequest:
    """Validate a ``:predict`` body and return the tensors for its signature (RequestError on anything invalid).

    ``spec`` (from :func:`read_feature_spec`) checks each tf.Example and gives the feature count of
    ``predict_features``; without it pass ``num_features`` (examples are then only checked to be base64).
    """
    data = _load_body(body)
    unknown = set(data) - _BODY_KEYS
    if unknown:
        raise RequestError(f"unknown key(s) {sorted(unknown)} in the body; allowed: {sorted(_BODY_KEYS)}.")
    if ("instances" in data) == ("inputs" in data):
        raise RequestError("the body must have exactly one of 'instances' (row format) or 'inputs' (columnar format).")
    signature = data.get("signature_name", SERVING_SIGNATURE)
    if signature not in _INPUT_KEYS:
        raise RequestError(f"signature_name {signature!r} is not one of {sorted(_INPUT_KEYS)}.")
    key = _INPUT_KEYS[signature]
    row_format = "instances" in data
    if row_format:
        values = data["instances"]
        if not isinstance(values, list):
            raise RequestError("'instances' must be a list.")
        values = [_unwrap_named(item, key) for item in values]
    else:
        values = data["inputs"]
        if isinstance(values, dict):
            if set(values) != {key}:
                raise RequestError(f"'inputs' must have exactly the key {key!r} for {signature}, got {sorted(values)}.")
            values = values[key]
        if not isinstance(values, list):
            raise RequestError(f"the {key!r} input must be a list.")
    if not values:
        raise RequestError("the request has no rows.")
    if signature == SERVING_SIGNATURE:
        decoded = [_decode_b64(item, i) for i, item in enumerate(values)]
        for i, serialized in enumerate(decoded):
            if spec is not None:
                try:
                    check_example(serialized, spec)
                except RequestError as err:
                    raise RequestError(f"example {i}: {err}") from None
        return ParsedRequest(signature, {key: np.array(decoded, dtype=object)}, row_format)
    width = len(spec) if spec is not None else num_features
    matrix = np.empty((len(values), width or 0), dtype=np.float32)
    for i, row in enumerate(values):
        if not isinstance(row, list):
            raise RequestError(f"row {i} must be a list of {width or 'the model'}'s feature values.")
        if width is None:
            width = len(row)
            matrix = np.empty((len(values), width), dtype=np.float32)
        if len(row) != width:
            raise RequestError(f"row {i} has {len(row)} values; the model expects {width}.")
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RequestError(f"row {i}, column {j} is not a number ({str(value)[:40]!r}).")
            if not math.isfinite(value) or abs(value) > np.finfo(np.float32).max:
                raise RequestError(f"row {i}, column {j} is {value} (values must be finite float32).")
            matrix[i, j] = value
    if width == 0:
        raise RequestError("rows have no values.")
    return ParsedRequest(signature, {key: matrix}, row_format)


# --------------------------------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------------------------------


def format_response(outputs: Mapping[str, Any], row_format: bool) -> dict:
    """The REST response TF Serving returns for these signature outputs (tensors or arrays with batch first)."""
    arrays = {name: np.asarray(value.numpy() if hasattr(value, "numpy") else value) for name, value in outputs.items()}
    if row_format:
        batch = {len(a) for a in arrays.values()}
        if len(batch) != 1:
            raise ValueError(f"outputs disagree on the batch size: {sorted(batch)}")
        return {"predictions": [{name: a[i].tolist() for name, a in arrays.items()} for i in range(batch.pop())]}
    return {"outputs": {name: a.tolist() for name, a in arrays.items()}}


def predict(loaded: Any, body: str | bytes | Mapping, spec: FeatureSpec | None = None) -> dict:
    """Serve ``body`` with a ``tf.saved_model.load`` ed model as TF Serving would; returns the response dict."""
    import tensorflow as tf

    request = parse_request(body, spec)
    signature = loaded.signatures[request.signature_name]
    (key, value), = request.inputs.items()
    tensor = tf.constant(value.tolist() if value.dtype == object else value,
                         dtype=tf.string if value.dtype == object else tf.float32)
    outputs = signature(**{key: tensor})
    return format_response({name: outputs[name] for name in OUTPUT_KEYS if name in outputs}, request.row_format)


# --------------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------------


def read_csv_rows(path: str, rows: int) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        out = []
        for row in reader:
            if len(out) >= rows:
                break
            out.append(row)
    if not out:
        raise RequestError(f"{path} has no data rows.")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.serving_request",
        description="Print the TF Serving :predict body for the first rows of a CSV (and optionally the response).",
    )
    parser.add_argument("--model", required=True, help="SavedModel directory or TF Serving base dir (highest version).")
    parser.add_argument("--csv", required=True, help="CSV file with a header row naming the model's feature columns.")
    parser.add_argument("--rows", type=int, default=1, help="how many data rows to put in the body (default 1).")
    parser.add_argument("--signature", choices=sorted(_INPUT_KEYS), default=SERVING_SIGNATURE,
                        help="serving_default (base64 tf.Examples, default) or predict_features (dense floats).")
    parser.add_argument("--columnar", action="store_true", help="columnar 'inputs' format instead of row 'instances'.")
    parser.add_argument("--predict", action="store_true",
                        help="also run the model locally and print the response TF Serving would return.")
    parser.add_argument("--indent", type=int, default=None, help="JSON indentation (default: compact).")
    args = parser.parse_args(argv)
    try:
        model_dir = resolve_model_dir(args.model)
        if not os.path.isfile(args.csv):
            raise FileNotFoundError(f"CSV {args.csv!r} does not exist.")
        spec = read_feature_spec(model_dir)
        rows = read_csv_rows(args.csv, args.rows)
        build = examples_body if args.signature == SERVING_SIGNATURE else features_body
        body = build(rows, spec, columnar=args.columnar)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(body, indent=args.indent))
    if args.predict:
        import tensorflow as tf

        print(json.dumps(predict(tf.saved_model.load(model_dir), body, spec), indent=args.indent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
