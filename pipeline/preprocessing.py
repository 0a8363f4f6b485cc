"""tf.Transform preprocessing: every numeric feature column becomes one scaled ``features`` vector.

The same graph runs in training (Transform) and in serving (attached to the SavedModel), so there is no
training/serving skew. Column order is the natural order of the names, which for ``px_###`` columns is
the pixel order the model's image augmentation relies on.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from model.features import TRANSFORMED_FEATURES_KEY, is_feature, natural_key
from pipeline.configs import GLOBAL_MINMAX, SCALINGS


def _dense(tensor) -> tf.Tensor:
    """A [batch] float32 tensor from a dense or sparse (possibly missing-valued) input column."""
    if isinstance(tensor, tf.sparse.SparseTensor):
        tensor = tf.sparse.to_dense(tensor, default_value=0)
    tensor = tf.cast(tensor, tf.float32)
    return tf.reshape(tensor, [-1])


def preprocessing_fn(inputs: dict, custom_config: dict | None = None) -> dict:
    """Stack the feature columns and scale them.

    ``custom_config["scaling"]``: ``global_minmax`` maps the whole matrix to [0, 1] with one min and max
    (right for images and a Bernoulli decoder: pixel 0 stays 0 even if a corner is always blank), ``zscore``
    standardises each column (right for tabular data and a Gaussian decoder).
    """
    scaling = (custom_config or {}).get("scaling", GLOBAL_MINMAX)
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; expected one of {SCALINGS}")
    names = sorted((name for name in inputs if is_feature(name)), key=natural_key)
    stacked = tf.stack([_dense(inputs[name]) for name in names], axis=1)
    if scaling == GLOBAL_MINMAX:
        low, high = tft.min(stacked, reduce_instance_dims=True), tft.max(stacked, reduce_instance_dims=True)
        scaled = (stacked - low) / tf.maximum(high - low, 1e-6)
    else:
        scaled = tft.scale_to_z_score(stacked, elementwise=True)
    return {TRANSFORMED_FEATURES_KEY: scaled}
