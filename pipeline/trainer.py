"""TFX Trainer module: train the GMVAE on tf.Transform's output and export it with the transform attached.

The exported ``serving_default`` takes raw serialized tf.Examples (what TF Serving and batch scoring pass),
applies the same tf.Transform graph as training, then the model: no training/serving skew.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx import v1 as tfx

from model.config import GMVAEConfig
from model.distribute import get_strategy
from model.export import export_saved_model
from model.features import TRANSFORMED_FEATURES_KEY, is_feature, natural_key
from model.training import fit_gmvae
from pipeline import configs

PRESETS = {"digits": GMVAEConfig.for_digits, "mnist": GMVAEConfig.for_mnist, "default": GMVAEConfig}


def model_config_from(custom_config: dict, input_dim: int) -> GMVAEConfig:
    """The GMVAE config for this run: a preset, the data's shape, then user overrides.

    ``custom_config``: ``{"preset": "digits"|"mnist"|"default", "image_shape": [h, w] | None,
    "overrides": {field: value}}``. Inputs arrive already scaled by tf.Transform, so ``input_scale`` is 1.
    """
    preset = custom_config.get("preset", "default")
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; expected one of {sorted(PRESETS)}")
    image_shape = custom_config.get("image_shape")
    overrides = dict(custom_config.get("overrides") or {})
    if "hidden_units" in overrides:
        overrides["hidden_units"] = tuple(overrides["hidden_units"])
    return PRESETS[preset](
        input_dim=input_dim,
        input_scale=1.0,
        image_shape=tuple(image_shape) if image_shape else None,
        **overrides,
    )


def read_transformed_features(file_pattern: list[str] | str, tf_transform_output: tft.TFTransformOutput) -> np.ndarray:
    """All transformed ``features`` vectors of the given gzip TFRecord files as one [N, F] array."""
    files = tf.io.gfile.glob(file_pattern) if isinstance(file_pattern, str) else [
        f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]
    spec = {TRANSFORMED_FEATURES_KEY: tf_transform_output.transformed_feature_spec()[TRANSFORMED_FEATURES_KEY]}
    dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP")
               .batch(4096)
               .map(lambda records: tf.io.parse_example(records, spec)[TRANSFORMED_FEATURES_KEY]))
    batches = [batch.numpy() for batch in dataset]
    if not batches:
        raise ValueError(f"no transformed examples found in {file_pattern}")
    return np.concatenate(batches).astype(np.float32)


class _TransformedInput(tf.Module):
    """Raw parsed features -> the model input, through tf.Transform's serving layer (tracked for export)."""

    def __init__(self, tf_transform_output: tft.TFTransformOutput) -> None:
        super().__init__(name="transform")
        self.tft_layer = tf_transform_output.transform_features_layer()

    def __call__(self, raw: dict) -> tf.Tensor:
        return self.tft_layer(raw)[TRANSFORMED_FEATURES_KEY]


def checkpoint_dir_for(fn_args: tfx.components.FnArgs) -> str | None:
    """A directory that stays the same when the same training is retried: keyed by its data and config.

    A Trainer that was killed (preempted node, OOM, Ctrl-C) gets a new execution with new output directories on
    the next run; keying the checkpoints by what is trained lets that execution resume instead of starting over.
    """
    custom_config = dict(fn_args.custom_config or {})
    root = custom_config.pop(configs.CHECKPOINT_ROOT_KEY, None)
    if not root:
        return None
    key = json.dumps({"config": custom_config, "train": sorted(fn_args.train_files),
                      "transform": fn_args.transform_output}, sort_keys=True)
    return os.path.join(root, hashlib.sha256(key.encode()).hexdigest()[:16])


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Train under the strategy the machine offers, log to TensorBoard, export the serving model."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    x_train = read_transformed_features(fn_args.train_files, tf_transform_output)
    config = model_config_from(fn_args.custom_config or {}, input_dim=x_train.shape[1])
    logging.info("Training on %d examples x %d features with %s", len(x_train), x_train.shape[1], config)

    strategy = get_strategy()
    callbacks = [keras.callbacks.TensorBoard(log_dir=os.path.join(fn_args.model_run_dir, "logs"))]
    checkpoint_dir = checkpoint_dir_for(fn_args)
    logging.info("Training checkpoints (a re-run after a crash resumes from them): %s", checkpoint_dir)
    model, history = fit_gmvae(
        x_train, config, strategy=strategy, callbacks=callbacks, verbose=2, checkpoint_dir=checkpoint_dir)

    raw_spec = tf_transform_output.raw_feature_spec()
    feature_names = sorted((name for name in raw_spec if is_feature(name)), key=natural_key)
    export_saved_model(
        model,
        fn_args.serving_model_dir,
        feature_names,
        preprocess=_TransformedInput(tf_transform_output),
        feature_spec={name: raw_spec[name] for name in feature_names},
    )
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as f:
        json.dump(history, f, default=float)
    if checkpoint_dir and tf.io.gfile.exists(checkpoint_dir):
        tf.io.gfile.rmtree(checkpoint_dir)
