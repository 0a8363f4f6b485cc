"""Input drift between the data a candidate was trained on and the data the champion was trained on (TFDV).

The Trainer stores the TFDV statistics of its training examples in the SavedModel (``assets.extra``), so the
champion's are at hand on every runner. The comparison is TFDV's drift comparator with a zero threshold, so every
feature is measured: Jensen-Shannon divergence for numeric features (an L-infinity distance reads 0 on them,
tensorflow/data-validation#147) and L-infinity distance for categorical (text) features.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx_bsl.coders.example_coder import ExamplesToRecordBatchDecoder

from components.clustering_evaluator.bless_rules import DRIFT_THRESHOLD
from model.features import is_feature
from serving.cluster_ids import ASSETS_EXTRA

TRAINING_STATISTICS_FILE = "training_statistics.pb"  # a binary DatasetFeatureStatisticsList
JS = "jensen_shannon_divergence"
L_INF = "l_infinity"
_MEASURES = {anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: JS,
             anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: L_INF}


def statistics_path(saved_model_dir: str) -> str:
    return os.path.join(saved_model_dir, ASSETS_EXTRA, TRAINING_STATISTICS_FILE)


def statistics_of(serialized_examples: Sequence[bytes]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of serialized tf.Examples, computed in memory (no Beam)."""
    batch = ExamplesToRecordBatchDecoder().DecodeBatch(list(serialized_examples))
    return stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())


def write_statistics(saved_model_dir: str, statistics: statistics_pb2.DatasetFeatureStatisticsList) -> None:
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


def drift(current: statistics_pb2.DatasetFeatureStatisticsList,
          previous: statistics_pb2.DatasetFeatureStatisticsList, threshold: float = DRIFT_THRESHOLD) -> dict[str, Any]:
    """Per model feature (not id or label) of both statistics, the drift from ``previous`` to ``current``; the
    largest; and the features above ``threshold``, most drifted first."""
    schema = tfdv.infer_schema(previous)
    for feature in schema.feature:
        if feature.type == schema_pb2.BYTES:
            feature.drift_comparator.infinity_norm.threshold = 0.0
        else:
            feature.drift_comparator.jensen_shannon_divergence.threshold = 0.0
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=previous)
    features = {}
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        if not is_feature(name):  # id and label are not model inputs
            continue
        for measurement in info.drift_measurements:
            features[name] = {"measure": _MEASURES[measurement.type], "value": float(measurement.value)}
    ranked = sorted(features, key=lambda name: -features[name]["value"])
    return {
        "threshold": threshold,
        "features": features,
        "max": features[ranked[0]]["value"] if ranked else 0.0,
        "max_feature": ranked[0] if ranked else None,
        "drifted": [name for name in ranked if features[name]["value"] > threshold],
    }
