"""Table likelihood: two-valued columns are Bernoulli, found in the data; a random category does not take over."""

import numpy as np
import pytest
import tensorflow as tf

from model import metrics
from model.config import GMVAEConfig
from model.gmvae import GMVAE
from model.training import binary_columns, fit_gmvae


def _standardised(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def test_binary_columns_are_two_valued_and_straddle_zero() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([
        rng.normal(size=50),                     # numeric
        _standardised(rng.integers(0, 2, (50, 1)).astype(float))[:, 0],  # 0/1, standardised
        np.zeros(50),                            # constant
        rng.integers(0, 3, 50) - 1.0,            # three values
        rng.integers(1, 3, 50).astype(float),    # two values, both above 0: not standardised, left Gaussian
        _standardised(np.eye(50)[:, :1])[:, 0],  # one row of 50 (2%) differs
    ])
    assert binary_columns(x) == (1, 5)
    assert binary_columns(x, min_share=0.05) == (1,)  # below the share the rare value is an outlier


def test_binary_column_log_likelihood_is_bernoulli_and_bounded() -> None:
    config = GMVAEConfig.for_table(100, 3, hidden_units=(8,), n_components=2, binary_features=(1,))
    model = GMVAE(config)
    z = tf.random.normal([4, config.latent_dim], seed=1)
    x = tf.constant([[0.3, 1.5, -2.0], [1.0, -0.7, 0.0], [0.0, 1.5, 4.0], [-1.0, -0.7, 1.0]])
    out = model.decoder(z)
    noise = 1e-2 + tf.nn.softplus(model.log_noise + 0.5413)
    gaussian = -0.5 * ((x - out) / noise) ** 2 - tf.math.log(noise) - 0.5 * np.log(2 * np.pi)
    bernoulli = -tf.nn.softplus(-out) * tf.cast(x > 0, tf.float32) - tf.nn.softplus(out) * tf.cast(x <= 0, tf.float32)
    expected = tf.reduce_sum(tf.concat([gaussian[:, :1], bernoulli[:, 1:2], gaussian[:, 2:]], axis=1), axis=1)
    np.testing.assert_allclose(model.log_likelihood(z, x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    # the binary column's term ignores the noise std, which on a Gaussian would reward an exact fit without bound
    before = model.log_likelihood(z, x).numpy()
    model.log_noise.assign([0.0, -50.0, 0.0])
    np.testing.assert_allclose(model.log_likelihood(z, x).numpy(), before, rtol=1e-6)


def test_missing_values_and_their_indicators_do_not_count_in_the_likelihood() -> None:
    # columns: 0 numeric value, 1 its missing indicator; 2-4 a text column's one-hot (4 = its "missing" slot); 5 numeric
    groups = ((1, 0), (4, 2, 3))
    config = GMVAEConfig.for_table(100, 6, hidden_units=(8,), n_components=2, missing_groups=groups)
    plain = GMVAE(config.replace(missing_groups=()))
    model = GMVAE(config)
    z = tf.random.normal([3, config.latent_dim], seed=2)
    x = tf.constant([[0.5, -0.3, 1.2, -0.8, -0.4, 1.0],   # everything observed
                     [0.0, 3.0, 1.2, -0.8, -0.4, -1.0],   # value 0 missing (imputed mean 0)
                     [-1.0, -0.3, -0.8, -0.8, 2.5, 0.2]])  # the text column missing
    plain(x), model(x)  # build both, then give them the same weights
    model.set_weights(plain.get_weights())
    noise = 1e-2 + tf.nn.softplus(plain.log_noise + 0.5413)
    per_column = tfd_normal_log_prob(x, plain.decoder(z), noise)
    weights = np.array([[1, 0, 1, 1, 0, 1], [0, 0, 1, 1, 0, 1], [1, 0, 0, 0, 0, 1]], dtype=np.float32)
    np.testing.assert_allclose(model.log_likelihood(z, x).numpy(), np.sum(per_column * weights, axis=1), rtol=1e-5)
    # what a missing row's imputed value or indicator holds does not change its likelihood
    changed = tf.tensor_scatter_nd_update(x, [[1, 0], [2, 2], [2, 3]], [5.0, 9.0, -9.0])
    np.testing.assert_allclose(model.log_likelihood(z, changed).numpy(), model.log_likelihood(z, x).numpy())
    for wrong in (((1, 6),), ((1,),), ((1, 0), (0, 2))):
        with pytest.raises(ValueError, match="missing groups"):
            config.replace(missing_groups=wrong)


def tfd_normal_log_prob(x: tf.Tensor, loc: tf.Tensor, scale: tf.Tensor) -> np.ndarray:
    return (-0.5 * ((x - loc) / scale) ** 2 - tf.math.log(scale) - 0.5 * np.log(2 * np.pi)).numpy()


def test_fit_finds_the_binary_columns_of_a_table_and_none_of_an_image() -> None:
    rng = np.random.default_rng(0)
    x = _standardised(np.column_stack([rng.normal(size=(120, 3)), rng.integers(0, 2, 120)]))
    tiny = {"hidden_units": (8,), "pretrain_epochs": 1, "epochs": 1, "gmm_n_init": 1}
    model, _ = fit_gmvae(x, GMVAEConfig.for_table(120, 4, n_components=2, **tiny), verbose=0)
    assert model.config.binary_features == (3,)
    images = (rng.random((120, 64)) > 0.5).astype(np.float32)
    model, _ = fit_gmvae(images, GMVAEConfig.for_digits(n_components=2, **tiny), verbose=0)
    assert model.config.binary_features is None


def test_a_resumed_run_keeps_the_first_runs_binary_columns(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = _standardised(np.column_stack([rng.normal(size=(120, 3)), rng.integers(0, 2, 120)]))
    config = GMVAEConfig.for_table(120, 4, n_components=2, hidden_units=(8,), pretrain_epochs=1, epochs=1,
                                   gmm_n_init=1)
    fit_gmvae(x, config, verbose=0, checkpoint_dir=str(tmp_path))
    x[0, 3] = 0.5  # a third value: a fresh run would model the column as a Gaussian
    model, history = fit_gmvae(x, config, verbose=0, checkpoint_dir=str(tmp_path))
    assert "pretrain" in history["resumed_stages"] and model.config.binary_features == (3,)
    assert fit_gmvae(x, config, verbose=0)[0].config.binary_features == ()


def test_binary_features_must_be_columns_of_the_input() -> None:
    with pytest.raises(ValueError, match="binary_features must be column indices in 0..2"):
        GMVAEConfig(input_dim=3, likelihood="gaussian", binary_features=(3,))


@pytest.mark.e2e
def test_random_text_column_and_blanks_do_not_decide_the_clusters() -> None:
    """Three groups in four numeric columns, plus a random four-valued text column (one-hot, with the always-zero
    unseen slot) and random blanks' missing indicators, as tf.Transform feeds them: the clusters follow the groups."""
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1, 2], [150, 90, 60])
    numbers = rng.normal(size=(300, 4)) + 2.5 * np.eye(3, 4)[groups]
    text = np.eye(5)[rng.integers(0, 4, 300)]
    indicators = (rng.random((300, 2)) < 0.15).astype(float)
    x = _standardised(np.column_stack([numbers, text, indicators]))
    model, _ = fit_gmvae(x, GMVAEConfig.for_table(300, x.shape[1], n_components=3), verbose=0)
    assert model.config.binary_features == (4, 5, 6, 7, 9, 10)
    clusters = model.predict_outputs(x)["cluster"]
    assert metrics.cluster_accuracy(groups, clusters) >= 0.85
