"""Input drift between the data a candidate was trained on and the data the champion was trained on (TFDV).

The Trainer stores the TFDV statistics of its training examples in the SavedModel (`serving.training_statistics`),
so the champion's are at hand on every runner. The comparison is TFDV's drift comparator with a zero threshold, so
every feature is measured: Jensen-Shannon divergence for numeric features (an L-infinity distance reads 0 on them,
tensorflow/data-validation#147) and L-infinity distance for categorical (text) features.
"""

from __future__ import annotations

from typing import Any

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components.clustering_evaluator.bless_rules import DRIFT_THRESHOLD
from model.features import is_feature

JS = "jensen_shannon_divergence"
L_INF = "l_infinity"
_MEASURES = {anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: JS,
             anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: L_INF}


def _feature_names(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> set[str]:
    """The model features (not id or label) that ``statistics`` describe."""
    names = {".".join(f.path.step) or f.name for dataset in statistics.datasets for f in dataset.features}
    return {name for name in names if is_feature(name)}


def drift(current: statistics_pb2.DatasetFeatureStatisticsList,
          previous: statistics_pb2.DatasetFeatureStatisticsList) -> dict[str, Any]:
    """Per model feature (not id or label) of both statistics, the drift from ``previous`` to ``current``; the
    largest; the features above `DRIFT_THRESHOLD`, most drifted first; and the features only ``current`` has
    (``added``) or only ``previous`` (``removed``), which no drift measure covers."""
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
        "threshold": DRIFT_THRESHOLD,
        "features": features,
        "max": features[ranked[0]]["value"] if ranked else 0.0,
        "max_feature": ranked[0] if ranked else None,
        "drifted": [name for name in ranked if features[name]["value"] > DRIFT_THRESHOLD],
        "added": sorted(_feature_names(current) - _feature_names(previous)),
        "removed": sorted(_feature_names(previous) - _feature_names(current)),
    }
