"""SavedModel export: reloaded signatures (TF2 and TF1 loaders) agree with the in-memory model."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from model import features
from model.config import GMVAEConfig
from model.export import export_saved_model
from model.training import fit_gmvae

NAMES = [f"pixel_{i}" for i in range(64)]


@pytest.fixture(scope="module")
def trained():
    raw = load_digits().data[:300].astype("float32")
    config = GMVAEConfig.for_digits(hidden_units=(32,), pretrain_epochs=3, epochs=2, n_components=5)
    model, _ = fit_gmvae(raw / 16.0, config, verbose=0)
    return model, raw


def _examples(raw: np.ndarray) -> np.ndarray:
    out = []
    for row in raw:
        feats = {n: tf.train.Feature(float_list=tf.train.FloatList(value=[v])) for n, v in zip(NAMES, row, strict=True)}
        out.append(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    return np.array(out, dtype=object)


def test_saved_model_matches_in_memory(trained, tmp_path) -> None:
    model, raw = trained
    expected = model.predict_outputs(raw / 16.0)
    assert len(np.unique(expected[features.CLUSTER])) > 1
    path = export_saved_model(model, str(tmp_path / "export"), NAMES)
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {features.SERVING_SIGNATURE, features.FEATURES_SIGNATURE,
                                      features.TRANSFORM_SIGNATURE}
    serving = loaded.signatures[features.SERVING_SIGNATURE]
    dense = loaded.signatures[features.FEATURES_SIGNATURE]
    (serving_spec,) = serving.structured_input_signature[1].values()
    assert list(serving.structured_input_signature[1]) == [features.SERVING_INPUT_KEY]
    assert serving_spec.dtype == tf.string and serving_spec.shape.rank == 1
    assert list(dense.structured_input_signature[1]) == [features.FEATURES_INPUT_KEY]
    got_serving = serving(**{features.SERVING_INPUT_KEY: tf.constant(_examples(raw))})
    got_dense = dense(**{features.FEATURES_INPUT_KEY: tf.constant(raw)})
    for got in (got_serving, got_dense):
        assert set(got) == set(features.OUTPUT_KEYS)
        assert got[features.CLUSTER].dtype == tf.int64
        np.testing.assert_array_equal(got[features.CLUSTER].numpy(), expected[features.CLUSTER])
        for key in (features.CLUSTER_PROBABILITIES, features.LATENT_MEAN, features.ELBO):
            assert got[key].shape[0] == len(raw)
            np.testing.assert_allclose(got[key].numpy(), expected[key], rtol=1e-4, atol=1e-4)
    transformed = loaded.signatures[features.TRANSFORM_SIGNATURE](
        **{features.SERVING_INPUT_KEY: tf.constant(_examples(raw))})[features.TRANSFORMED_FEATURES_KEY]
    np.testing.assert_allclose(transformed.numpy(), np.clip(raw * model.config.input_scale, 0.0, 1.0), rtol=1e-6)


def test_tf1_session_loader(trained, tmp_path) -> None:
    model, raw = trained
    expected = model.predict_outputs(raw[:20] / 16.0)[features.CLUSTER]
    path = export_saved_model(model, str(tmp_path / "export"), NAMES)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        sig = meta.signature_def[features.SERVING_SIGNATURE]
        assert len(sig.inputs) == 1
        for out in sig.outputs.values():  # BulkInferrer: every output batched
            assert out.tensor_shape.dim[0].size == -1
        got = sess.run(
            sig.outputs[features.CLUSTER].name,
            {sig.inputs[features.SERVING_INPUT_KEY].name: _examples(raw[:20])},
        )
    np.testing.assert_array_equal(got, expected)


class _Scaler(tf.Module):
    """A trackable preprocessing step with its own variable (like tf.Transform's layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = tf.Variable(1.0 / 16.0)

    def __call__(self, raw):
        return tf.stack([raw[n] for n in NAMES], axis=1) * self.scale


def test_trackable_preprocess_is_saved(trained, tmp_path) -> None:
    model, raw = trained
    path = export_saved_model(model, str(tmp_path / "export"), NAMES, preprocess=_Scaler())
    loaded = tf.saved_model.load(path)
    assert float(loaded.preprocess_layer.scale.numpy()) == pytest.approx(1.0 / 16.0)
    got = loaded.signatures[features.FEATURES_SIGNATURE](**{features.FEATURES_INPUT_KEY: tf.constant(raw)})
    np.testing.assert_array_equal(got[features.CLUSTER].numpy(), model.predict_outputs(raw / 16.0)[features.CLUSTER])


def test_feature_count_checked(trained, tmp_path) -> None:
    with pytest.raises(ValueError):
        export_saved_model(trained[0], str(tmp_path / "x"), NAMES[:3])


def test_baked_cluster_ids_relabel_serving_and_dense_signatures_alike(trained, tmp_path) -> None:
    model, raw = trained
    expected = model.predict_outputs(raw / 16.0)
    ids = [7, 0, 3, 1, 5]  # component k -> stable ID; IDs 2, 4 and 6 are not used by this model
    path = export_saved_model(model, str(tmp_path / "export"), NAMES, cluster_ids=ids, id_columns=8)
    loaded = tf.saved_model.load(path)
    got_serving = loaded.signatures[features.SERVING_SIGNATURE](**{features.SERVING_INPUT_KEY: tf.constant(
        _examples(raw))})
    got_dense = loaded.signatures[features.FEATURES_SIGNATURE](**{features.FEATURES_INPUT_KEY: tf.constant(raw)})
    for got in (got_serving, got_dense):
        np.testing.assert_array_equal(got[features.CLUSTER].numpy(), np.array(ids)[expected[features.CLUSTER]])
        probabilities = got[features.CLUSTER_PROBABILITIES].numpy()
        assert probabilities.shape == (len(raw), 8)
        np.testing.assert_allclose(probabilities[:, ids], expected[features.CLUSTER_PROBABILITIES], atol=1e-5)
        np.testing.assert_array_equal(probabilities[:, [2, 4, 6]], 0.0)
        np.testing.assert_array_equal(probabilities.argmax(axis=1), got[features.CLUSTER].numpy())
    with pytest.raises(ValueError, match="distinct IDs"):
        export_saved_model(model, str(tmp_path / "bad"), NAMES, cluster_ids=[0, 0, 1, 2, 3])
