"""tf.Transform preprocessing: the feature columns become one ``features`` vector the model reads.

Numeric columns are used as numbers; a column that had missing values in the data gets them imputed with the
column mean plus a 0/1 missing-indicator column. Categorical (text) columns become a vocabulary and a one-hot block:
first a slot for "missing or unseen" (a missing value, or a category the training data never had), then one slot per
category seen.
Then the whole vector is scaled: one global min/max (images, Bernoulli decoder) or a z-score per column (tables,
Gaussian decoder). The same graph runs in training (Transform) and in serving (attached to the SavedModel), so
there is no training/serving skew. Column order is the natural order of the names, which for ``px_###`` columns is
the pixel order the model's image augmentation relies on.
"""

from __future__ import annotations

import re
import zlib

import tensorflow as tf
import tensorflow_transform as tft

from model.features import TRANSFORMED_FEATURES_KEY, is_feature, natural_key
from pipeline.configs import GLOBAL_MINMAX, FeaturePlan

_MISSING_CATEGORY = "__missing__"


def _column(tensor, default: float | str) -> tf.Tensor:
    """A [batch] tensor from a dense or sparse (missing-valued) input column, ``default`` where missing."""
    if isinstance(tensor, tf.sparse.SparseTensor):
        tensor = tft.sparse_tensor_to_dense_with_shape(tensor, [None, 1], default_value=default)
    return tf.reshape(tensor, [-1])


def _numeric(tensor, impute: bool) -> list[tf.Tensor]:
    """[value] or, for a column with missing values, [value with the mean imputed, missing indicator]."""
    if isinstance(tensor, tf.sparse.SparseTensor):
        tensor = tf.cast(tensor, tf.float32)
    value = tf.cast(_column(tensor, float("nan")), tf.float32)
    if not impute:
        return [value]
    present = tf.math.logical_not(tf.math.is_nan(value))
    zeros = tf.where(present, value, tf.zeros_like(value))
    count = tft.sum(tf.cast(present, tf.float64), reduce_instance_dims=True)
    mean = _rounded(tft.sum(tf.cast(zeros, tf.float64), reduce_instance_dims=True) / tf.maximum(count, 1.0))
    return [tf.where(present, value, mean * tf.ones_like(value)), 1.0 - tf.cast(present, tf.float32)]


def _rounded(statistic: tf.Tensor) -> tf.Tensor:
    """A float64 statistic as float32. Beam sizes tf.Transform's batches by the machine's load, so a sum's last bits
    depend on the order it was added up in; accumulated in float64 and rounded, they do not, and a pipeline run
    repeats exactly from its seed."""
    return tf.cast(statistic, tf.float32)


def _z_score(x: tf.Tensor) -> tf.Tensor:
    """[batch, F] -> (x - mean) / standard deviation per column; a column of one value is only centred (as
    ``tft.scale_to_z_score``), with statistics that do not depend on the order of the rows (``_rounded``)."""
    wide = tf.cast(x, tf.float64)
    mean = tf.cast(_rounded(tft.mean(wide, reduce_instance_dims=False)), tf.float64)
    std = tf.cast(_rounded(tf.sqrt(tft.var(wide, reduce_instance_dims=False))), tf.float64)
    centred = wide - mean
    return tf.cast(tf.where(std > 0, centred / tf.where(std > 0, std, 1.0), centred), tf.float32)


def vocabulary_name(column: str) -> str:
    """The tf.Transform vocabulary file of a categorical column (`tft.TFTransformOutput.vocabulary_by_name`).

    tf.Transform makes TensorFlow name scopes of it, which take only ASCII, and rewrites some characters itself (so
    ``a.b`` and ``a_b`` had shared one vocabulary): a name of other characters than ASCII letters, digits and ``_``
    has them replaced by ``_`` and gets a hash of the name, which keeps every column's vocabulary apart."""
    if re.fullmatch(r"[A-Za-z0-9_]+", column):
        return f"vocab_{column}"
    return f"vocab_{re.sub(r'[^A-Za-z0-9_]', '_', column)}_{zlib.crc32(column.encode('utf-8')):08x}"


def _categorical(name: str, tensor, n_categories: int) -> tf.Tensor:
    """One-hot [batch, 1 + n_categories] over a vocabulary computed on the data, slot 0 "missing or unseen"."""
    values = _column(tensor, _MISSING_CATEGORY)
    # top_k ranks the blanks (filled in as the reserved token) with the categories: one more, so none loses its slot
    index = tft.compute_and_apply_vocabulary(values, top_k=n_categories + 1, reserved_tokens=[_MISSING_CATEGORY],
                                             default_value=0, vocab_filename=vocabulary_name(name))
    return tf.one_hot(index, depth=1 + n_categories, dtype=tf.float32)


def missing_groups(plan: FeaturePlan) -> tuple[tuple[int, ...], ...]:
    """`model.config.GMVAEConfig.missing_groups` of the model input `preprocessing_fn` builds from ``plan``:
    (indicator column, the columns it marks missing) per numeric column with missing values, (indicator, imputed
    value), and per text column, whose "missing or unseen" slot marks its category slots."""
    groups, at = [], 0
    for name in plan.columns:
        if name in plan.categorical:
            width = 1 + plan.categorical[name]
            groups.append(tuple(range(at, at + width)))
            at += width
        elif name in plan.missing:
            groups.append((at + 1, at))
            at += 2
        else:
            at += 1
    return tuple(groups)


def preprocessing_fn(inputs: dict, custom_config: dict | None = None) -> dict:
    """Encode, impute, stack and scale the feature columns named by the `FeaturePlan` in ``custom_config``.

    Without a plan (TFRecord input) every input column except id/label is numeric and complete.
    """
    plan = FeaturePlan.from_custom_config(custom_config or {})
    names = list(plan.columns) or sorted((name for name in inputs if is_feature(name)), key=natural_key)
    blocks = []
    for name in names:
        if name in plan.categorical:
            blocks.append(_categorical(name, inputs[name], plan.categorical[name]))
        else:
            blocks.append(tf.stack(_numeric(inputs[name], name in plan.missing), axis=1))
    stacked = tf.concat(blocks, axis=1)
    if plan.scaling == GLOBAL_MINMAX:
        low, high = tft.min(stacked, reduce_instance_dims=True), tft.max(stacked, reduce_instance_dims=True)
        scaled = (stacked - low) / tf.maximum(high - low, 1e-6)
    else:
        scaled = _z_score(stacked)
    return {TRANSFORMED_FEATURES_KEY: scaled}
