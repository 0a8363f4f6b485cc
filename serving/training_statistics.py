"""The TFDV statistics of a model's training examples, carried in its SavedModel (``assets.extra``).

The Trainer writes them; the evaluator reads the candidate's and the champion's to measure input drift, so the
champion's are at hand on every runner without the ML Metadata store.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from serving.cluster_ids import ASSETS_EXTRA

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
