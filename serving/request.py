"""TF Serving REST contract for the GMVAE SavedModel: build ``:predict`` bodies, parse them, format responses.

TF Serving's REST API (``POST /v1/models/<name>[/versions/<v>]:predict``) takes a JSON body in one of two formats:

* row format: ``{"signature_name": ..., "instances": [row, ...]}``, answered with ``{"predictions": [...]}``;
* columnar format: ``{"signature_name": ..., "inputs": {input_key: [...]}}``, answered with ``{"outputs": {...}}``.

Our model has two signatures (names in :mod:`model.features`):

* ``serving_default``: input ``examples``, a 1-D string tensor of serialized ``tf.Example`` s. Binary JSON values are
  sent base64-encoded as ``{"b64": "..."}``.
* ``predict_features``: input ``features``, dense float32 ``[B, F]`` in the model's feature order, NaN where an
  optional (sparse) feature is missing. A model with text (categorical) columns has no ``predict_features`` signature.

:func:`parse_request` turns a body into exactly the tensors TF Serving feeds the signature (numpy arrays), rejecting
anything TF Serving or the model would reject with one :class:`RequestError` sentence. It is stricter than TF Serving in
one way: rows with NaN/inf values (NaN is allowed where a feature is optional), or tf.Examples that lack a required
feature or carry one with the wrong kind, are rejected here instead of producing NaN scores or a parse error deep
in the graph. The feature spec comes from
:mod:`serving.feature_spec`.

CLI: ``python -m serving.request --model DIR --csv FILE --rows 2 [--columnar] [--predict]`` prints the body a client
would send (and, with ``--predict``, the response TF Serving would return, computed locally).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

if __name__ == "__main__":  # the CLI only, not importers: TensorFlow's C++ start-up lines (CUDA plug-ins not found,
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # CPU features) are noise here; set the variable to see them

import numpy as np  # noqa: E402 - after the variable, which TensorFlow reads on import

from model.features import (  # noqa: E402
    CSV_ENCODING,
    CSV_READER_OPTIONS,
    FEATURES_INPUT_KEY,
    FEATURES_SIGNATURE,
    OUTPUT_KEYS,
    SERVING_INPUT_KEY,
    SERVING_SIGNATURE,
)
from serving.feature_spec import (  # noqa: E402
    NO_DENSE_SIGNATURE,
    FeatureSpec,
    RequestError,
    build_example,
    check_example,
    has_text,
    read_feature_spec,
    to_value,
)
from serving.store import resolve_model_dir  # noqa: E402

_INPUT_KEYS = {SERVING_SIGNATURE: SERVING_INPUT_KEY, FEATURES_SIGNATURE: FEATURES_INPUT_KEY}
_BODY_KEYS = {"signature_name", "instances", "inputs"}


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode("ascii")}


def examples_body(rows: Iterable[Mapping[str, Any]], spec: FeatureSpec, columnar: bool = False) -> dict:
    """The ``:predict`` body for ``serving_default`` from feature dicts (one tf.Example per row)."""
    payload = [_b64(build_example(row, spec)) for row in rows]
    if columnar:
        return {"signature_name": SERVING_SIGNATURE, "inputs": {SERVING_INPUT_KEY: payload}}
    return {"signature_name": SERVING_SIGNATURE, "instances": payload}


def features_body(rows: Iterable[Mapping[str, Any]], spec: FeatureSpec, columnar: bool = False) -> dict:
    """The ``:predict`` body for ``predict_features`` from feature dicts (dense rows in the model's feature order,
    NaN for a missing value of an optional feature); RequestError for a model with text columns."""
    if has_text(spec):
        raise RequestError(NO_DENSE_SIGNATURE)
    matrix = [[_dense_value(to_value(row.get(name), raw)) for name, raw in spec.items()] for row in rows]
    if columnar:
        return {"signature_name": FEATURES_SIGNATURE, "inputs": {FEATURES_INPUT_KEY: matrix}}
    return {"signature_name": FEATURES_SIGNATURE, "instances": matrix}


def _dense_value(value: int | float | None) -> float:
    return math.nan if value is None else float(value)


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
    if spec is not None and has_text(spec):
        raise RequestError(NO_DENSE_SIGNATURE)
    width = len(spec) if spec is not None else num_features
    optional = [feature.optional for feature in spec.values()] if spec is not None else None
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
            if isinstance(value, float) and math.isnan(value) and optional is not None and optional[j]:
                matrix[i, j] = value  # a missing value of an optional feature
                continue
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


class _GFileRaw(io.RawIOBase):
    """A ``tf.io.gfile.GFile`` opened "rb" as a raw byte stream, so that Python's own text layer can decode it."""

    def __init__(self, gfile: Any) -> None:
        self._gfile = gfile

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._gfile.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_csv_rows(path: str, rows: int) -> list[dict[str, str]]:
    """The first ``rows`` data rows of a CSV file with a header row (any ``tf.io.gfile`` path)."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"CSV {path!r} does not exist.")
    with tf.io.gfile.GFile(path, "rb") as f:
        # read as staging reads a file: a byte-order mark is no part of the first name, even quoted, and line breaks
        # stay as they are (GFile's own lines turn a quoted \r\n into \n and do not end a line at a lone \r)
        text = io.TextIOWrapper(io.BufferedReader(_GFileRaw(f)), encoding=CSV_ENCODING, newline="")
        reader = csv.DictReader(text, **CSV_READER_OPTIONS)
        out = []
        for row in reader:
            if len(out) >= rows:
                break
            out.append(row)
    if not out:
        raise RequestError(f"{path} has no data rows.")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m serving.request``: print the body (and with ``--predict`` the response); exit 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.request",
        description="Print the TF Serving :predict body for the first rows of a CSV (and optionally the response).",
    )
    parser.add_argument("--model", required=True, help="SavedModel directory or TF Serving base dir (highest version).")
    parser.add_argument("--csv", required=True, help="CSV file with a header row naming the model's feature columns.")
    parser.add_argument("--rows", type=_positive, default=1,
                        help="how many data rows to put in the body (default 1); a CSV with fewer gives all of its "
                             "rows and a note on stderr.")
    parser.add_argument("--signature", choices=sorted(_INPUT_KEYS), default=SERVING_SIGNATURE,
                        help="serving_default (base64 tf.Examples, default) or predict_features (dense floats, NaN "
                             "for a missing optional value); a model with text (categorical) columns has no "
                             "predict_features signature.")
    parser.add_argument("--columnar", action="store_true", help="columnar 'inputs' format instead of row 'instances'.")
    parser.add_argument("--predict", action="store_true",
                        help="also run the model locally and print the response TF Serving would return.")
    parser.add_argument("--indent", type=int, default=None, help="JSON indentation (default: compact).")
    args = parser.parse_args(argv)
    try:
        model_dir = resolve_model_dir(args.model)
        spec = read_feature_spec(model_dir)
        rows = read_csv_rows(args.csv, args.rows)
        build = examples_body if args.signature == SERVING_SIGNATURE else features_body
        try:
            body = build(rows, spec, columnar=args.columnar)
        except RequestError:
            build([], spec)  # what the model cannot take at all (no dense signature) is not any row's fault
            for number, row in enumerate(rows, start=1):  # else the row that holds the bad value is named
                try:
                    build([row], spec)
                except RequestError as err:
                    raise RequestError(f"{args.csv}, data row {number}: {err}") from None
            raise
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if len(rows) < args.rows:  # on stderr: stdout stays exactly the body, for a pipe
        held = "it" if len(rows) == 1 else f"all {len(rows)}"
        print(f"note: {args.csv} has only {len(rows)} data row{'s' * (len(rows) != 1)}; the body holds {held} "
              f"(--rows {args.rows}).", file=sys.stderr)
    print(json.dumps(body, indent=args.indent))
    if args.predict:
        import tensorflow as tf

        print(json.dumps(predict(tf.saved_model.load(model_dir), body, spec), indent=args.indent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
