"""SavedModel export with a tf.Example serving signature and a dense-features signature."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from model import features
from model.gmvae import GMVAE

Preprocess = Callable[[Mapping[str, tf.Tensor]], tf.Tensor]


class _ExportModule(tf.Module):
    """Holds the model variables, the optional preprocessing trackable and the signatures."""

    def __init__(
        self,
        model: GMVAE,
        feature_names: Sequence[str],
        preprocess: Preprocess | None,
        feature_spec: Mapping[str, tf.io.FixedLenFeature | tf.io.VarLenFeature] | None,
        cluster_ids: Sequence[int],
        id_columns: int,
    ) -> None:
        super().__init__(name="gmvae_export")
        self._model = model
        self._cluster_ids = tf.constant(list(cluster_ids), tf.int64)
        # [K, id_columns]: component k's probability goes to the column of its cluster ID
        self._to_id_columns = tf.constant(np.eye(id_columns, dtype=np.float32)[list(cluster_ids)])
        self.model_variables = list(model.variables)
        self.feature_names = list(feature_names)
        self._spec = dict(feature_spec or {name: tf.io.FixedLenFeature([], tf.float32) for name in feature_names})
        if preprocess is not None and isinstance(preprocess, tf.__internal__.tracking.Trackable):
            self.preprocess_layer = preprocess  # tracked: its variables/assets are saved
        self._preprocess = preprocess or self._default_preprocess
        self.serve = tf.function(
            self._serve, input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_INPUT_KEY)]
        )
        self.transform = tf.function(
            self._transform, input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_INPUT_KEY)]
        )
        # Dense float rows cannot carry text: with a categorical (string) column only serving_default exists.
        self.numeric_only = all(spec.dtype != tf.string for spec in self._spec.values())
        if self.numeric_only:
            self.predict_features = tf.function(
                self._predict_features,
                input_signature=[
                    tf.TensorSpec([None, len(self.feature_names)], tf.float32, name=features.FEATURES_INPUT_KEY)
                ],
            )

    def _default_preprocess(self, raw: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Stack raw features in `feature_names` order, then the model's input scaling."""
        x = tf.stack([tf.reshape(tf.cast(raw[name], tf.float32), [-1]) for name in self.feature_names], axis=1)
        x = x * self._model.config.input_scale
        return tf.clip_by_value(x, 0.0, 1.0) if self._model.config.likelihood == "bernoulli" else x

    def _outputs(self, raw: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        x = tf.cast(self._preprocess(dict(raw)), tf.float32)
        outputs = dict(self._model(x, training=False))
        outputs[features.CLUSTER] = tf.gather(self._cluster_ids, outputs[features.CLUSTER])
        outputs[features.CLUSTER_PROBABILITIES] = tf.matmul(outputs[features.CLUSTER_PROBABILITIES],
                                                            self._to_id_columns)
        return outputs

    def _serve(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._outputs(tf.io.parse_example(examples, self._spec))

    def _transform(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """The model input [B, input_dim] of serialized tf.Examples (what the evaluator's baselines read)."""
        raw = tf.io.parse_example(examples, self._spec)
        return {features.TRANSFORMED_FEATURES_KEY: tf.cast(self._preprocess(dict(raw)), tf.float32)}

    def _predict_features(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        """Split dense columns into raw features with the dtype and shape parsing would give them.

        A column that may be missing (a VarLenFeature) takes NaN as "missing", as an absent tf.Example feature.
        """
        raw = {}
        for i, name in enumerate(self.feature_names):
            spec = self._spec[name]
            column = features[:, i]
            if isinstance(spec, tf.io.VarLenFeature):
                rows = tf.where(tf.math.logical_not(tf.math.is_nan(column)))
                raw[name] = tf.SparseTensor(
                    indices=tf.concat([rows, tf.zeros_like(rows)], axis=1),
                    values=tf.cast(tf.gather_nd(column, rows), spec.dtype),
                    dense_shape=tf.stack([tf.shape(column, out_type=tf.int64)[0], 1]),
                )
            else:
                raw[name] = tf.reshape(tf.cast(column, spec.dtype), [-1, *spec.shape])
        return self._outputs(raw)


def export_saved_model(
    model: GMVAE,
    export_dir: str,
    feature_names: Sequence[str],
    preprocess: Preprocess | None = None,
    feature_spec: Mapping[str, tf.io.FixedLenFeature | tf.io.VarLenFeature] | None = None,
    cluster_ids: Sequence[int] | None = None,
    id_columns: int | None = None,
) -> str:
    """Write a SavedModel with the `serving_default`, `predict_features` and `transform_features` signatures.

    `serving_default` takes serialized tf.Examples (1-D string tensor, input key
    `features.SERVING_INPUT_KEY`), each with one float per name in `feature_names`;
    `predict_features` takes dense floats [B, len(feature_names)] (key `features.FEATURES_INPUT_KEY`; NaN where a
    column that may be missing is missing); it exists only when no feature is text (categorical).
    Both map the raw features {name: [B]} through `preprocess` to the model input [B, input_dim]
    (default: stack in `feature_names` order, multiply by `config.input_scale`, clip to [0, 1]
    for Bernoulli) and return `cluster` int64 [B], `cluster_probabilities` [B, K],
    `latent_mean` [B, D] and `elbo` [B]. `transform_features` takes serialized tf.Examples like `serving_default`
    and returns only the model input, `features` [B, input_dim] (the evaluator scores baselines on it).
    `feature_spec` (default: one float32 scalar per name) is how tf.Examples are parsed, e.g. tf.Transform's raw
    feature spec (int64 [1] columns stay int64 [1]); dense inputs are cast and reshaped to the same spec. A
    trackable `preprocess` (tf.Module, Keras layer such as tf.Transform's TransformFeaturesLayer) is attached so
    its variables and assets are saved.
    `cluster_ids[k]` (default k) is the stable ID that `cluster` gives the model's component k, and column
    `cluster_ids[k]` of `cluster_probabilities` holds its probability; the columns number `id_columns` (default
    max(cluster_ids) + 1), IDs the model does not use (retired ones) have probability 0.
    Loadable with `tf.saved_model.load` and the TF1 `tf.compat.v1.saved_model.loader`.
    """
    if len(feature_names) == 0:
        raise ValueError("feature_names is empty")
    if preprocess is None and len(feature_names) != model.config.input_dim:
        raise ValueError(f"{len(feature_names)} feature names for a model with input_dim {model.config.input_dim}")
    missing = set(feature_spec or ()) ^ set(feature_names) if feature_spec else set()
    if missing:
        raise ValueError(f"feature_spec and feature_names differ on {sorted(missing)}")
    k = model.prior.n_components
    ids = list(range(k)) if cluster_ids is None else [int(i) for i in cluster_ids]
    columns = max(ids) + 1 if id_columns is None else id_columns
    if len(ids) != k or len(set(ids)) != k or min(ids) < 0 or max(ids) >= columns:
        raise ValueError(f"cluster_ids {ids} must be {k} distinct IDs in 0..{columns - 1}")
    module = _ExportModule(model, feature_names, preprocess, feature_spec, ids, columns)
    signatures = {
        features.SERVING_SIGNATURE: module.serve.get_concrete_function(),
        features.TRANSFORM_SIGNATURE: module.transform.get_concrete_function(),
    }
    if module.numeric_only:
        signatures[features.FEATURES_SIGNATURE] = module.predict_features.get_concrete_function()
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir
