"""The TFDV statistics of a model's training examples, carried in its SavedModel (``assets.extra``).

The Trainer writes them; the evaluator reads the candidate's and the champion's to measure input drift, so the
champion's are at hand on every runner without the ML Metadata store.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from serving.cluster_ids import ASSETS_EXTRA
from serving.feature_spec import INT64, STRING, FeatureSpec

TRAINING_STATISTICS_FILE = "training_statistics.pb"  # a binary DatasetFeatureStatisticsList


def statistics_path(saved_model_dir: str) -> str:
    """Where a SavedModel keeps its training statistics."""
    return os.path.join(saved_model_dir, ASSETS_EXTRA, TRAINING_STATISTICS_FILE)


def write_statistics(saved_model_dir: str, statistics: statistics_pb2.DatasetFeatureStatisticsList) -> None:
    """Store ``statistics`` in the SavedModel at ``saved_model_dir``."""
    path = statistics_path(saved_model_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(statistics.SerializeToString())


def read_statistics(saved_model_dir: str) -> statistics_pb2.DatasetFeatureStatisticsList | None:
    """The training statistics a SavedModel carries, or None (a model exported before models carried them)."""
    path = statistics_path(saved_model_dir)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())


# What TFDV's top values show instead of a text too long or not UTF-8: never a value to stand in for a blank.
_TFDV_PLACEHOLDERS = frozenset({"__LARGE_BYTES__", "__BYTES_VALUE__"})


def typical_values(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> dict[str, float | bytes]:
    """Name -> the mean of each numeric feature and the most frequent value of each text feature in ``statistics``
    (its first dataset; TFDV's placeholders for long or binary text skipped)."""
    out: dict[str, float | bytes] = {}
    for feature in statistics.datasets[0].features if statistics.datasets else ():
        name = feature.path.step[0] if feature.path.step else feature.name
        if feature.HasField("num_stats") and feature.num_stats.common_stats.num_non_missing:
            out[name] = float(feature.num_stats.mean)
        elif feature.HasField("string_stats"):
            top = [v.value for v in feature.string_stats.top_values if v.value not in _TFDV_PLACEHOLDERS]
            if top:
                out[name] = top[0].encode("utf-8")
    return out


def blank_fills(model_dir: str, spec: FeatureSpec, optional: Iterable[str]
                ) -> tuple[dict[str, int | float | bytes], list[str]]:
    """What stands in for a blank where the model at ``model_dir`` (a champion, parsing ``spec``: its
    `read_feature_spec`) needs a value in every row of a feature that the data may leave blank (``optional``: such
    features' names): name -> the model's training mean
    (rounded for an int64 feature) or most frequent text, from the training statistics it carries; and the names
    without such a value (a model exported before models carried statistics, or whose statistics hold no value of
    the feature's kind), which it cannot score."""
    gaps = [name for name in optional if name in spec and not spec[name].optional]
    statistics = read_statistics(model_dir) if gaps else None
    typical = typical_values(statistics) if statistics is not None else {}
    fills: dict[str, int | float | bytes] = {}
    for name in gaps:
        value = typical.get(name)
        if isinstance(value, float) and spec[name].dtype != STRING:
            fills[name] = min(max(round(value), -(2**63)), 2**63 - 1) if spec[name].dtype == INT64 else value
        elif isinstance(value, bytes) and spec[name].dtype == STRING:
            fills[name] = value
    return fills, [name for name in gaps if name not in fills]
