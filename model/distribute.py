"""One factory for the tf.distribute strategy used to train the GMVAE."""

from __future__ import annotations

import json
import os

import tensorflow as tf


def _n_workers() -> int:
    """Number of workers (incl. chief) named in TF_CONFIG; 0 when unset or unparseable."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except (json.JSONDecodeError, AttributeError):
        return 0
    return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))


def get_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy if TF_CONFIG names several workers, MirroredStrategy when more
    than one GPU is visible, the default (single-device) strategy otherwise.

    Call it at program start: MultiWorkerMirroredStrategy must be created before TF runs any op.
    """
    if _n_workers() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
