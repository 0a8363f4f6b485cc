"""MixturePrior and GMVAE loss: shapes, log-densities against numpy, finiteness on extreme inputs."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from scipy.stats import norm

from model import features
from model.config import GMVAEConfig
from model.gmvae import GMVAE, MixturePrior

K, D = 3, 2
WEIGHTS = np.array([0.2, 0.5, 0.3])
MEANS = np.array([[0.0, 0.0], [2.0, -1.0], [-3.0, 4.0]])
VARIANCES = np.array([[1.0, 0.25], [4.0, 1.0], [0.5, 2.0]])


@pytest.fixture
def prior() -> MixturePrior:
    layer = MixturePrior(K, D, min_scale=0.05)
    layer.set_mixture(WEIGHTS, MEANS, VARIANCES)
    return layer


def _numpy_component_log_prob(z: np.ndarray) -> np.ndarray:
    """log pi_k + sum_d log N(z_d; mu_kd, sigma_kd): [B, K]."""
    dens = norm.logpdf(z[:, None, :], MEANS[None], np.sqrt(VARIANCES)[None]).sum(-1)
    return np.log(WEIGHTS)[None] + dens


def test_prior_shapes_and_parameters(prior: MixturePrior) -> None:
    dist = prior.distribution()
    assert dist.event_shape == [D]
    assert dist.batch_shape == []
    assert len(prior.trainable_variables) == 3
    np.testing.assert_allclose(prior.scale.numpy(), np.sqrt(VARIANCES), rtol=1e-5)
    np.testing.assert_allclose(tf.nn.softmax(prior.logits).numpy(), WEIGHTS, rtol=1e-5)
    assert dist.sample(7).shape == (7, D)


def test_prior_log_prob_matches_numpy(prior: MixturePrior) -> None:
    z = np.random.default_rng(0).normal(size=(20, D)) * 3
    joint = _numpy_component_log_prob(z)
    np.testing.assert_allclose(
        prior.distribution().log_prob(z.astype("float32")).numpy(), logsumexp(joint, -1), rtol=1e-4
    )
    np.testing.assert_allclose(prior.joint_log_prob(z.astype("float32")).numpy(), joint, rtol=1e-4)
    posterior = np.exp(joint - logsumexp(joint, -1, keepdims=True))
    np.testing.assert_allclose(np.exp(prior.log_posterior(z.astype("float32")).numpy()), posterior, atol=1e-5)


def test_prior_kl_to_components_matches_closed_form(prior: MixturePrior) -> None:
    import tensorflow_probability as tfp

    mu = np.array([[0.5, -0.5]], dtype="float32")
    sd = np.array([[0.3, 2.0]], dtype="float32")
    kl = prior.kl_to_components(tfp.distributions.Normal(mu, sd)).numpy()
    s2 = VARIANCES
    expected = 0.5 * (np.log(s2 / sd**2) + (sd**2 + (mu - MEANS) ** 2) / s2 - 1).sum(-1)
    np.testing.assert_allclose(kl[0], expected, rtol=1e-4)


def test_scales_clamped_from_below() -> None:
    layer = MixturePrior(2, 2, min_scale=0.1)
    layer.raw_scale.assign(np.full((2, 2), -1e4, dtype="float32"))
    assert np.all(layer.scale.numpy() >= 0.1)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("value", [0.0, 1.0])
def test_loss_and_outputs_finite_on_extreme_inputs(likelihood: str, value: float) -> None:
    config = GMVAEConfig(input_dim=16, n_components=4, latent_dim=3, hidden_units=(8,), likelihood=likelihood)
    model = GMVAE(config)
    x = tf.fill([5, 16], value)
    model(x)
    model.prior.raw_scale.assign(tf.fill([4, 3], -50.0))  # scales at the clamp
    model.prior.loc.assign(tf.fill([4, 3], 1e3))  # far from every code
    loss, terms = model.loss_terms(x * 1e3 if likelihood == "gaussian" else x)
    assert np.isfinite(loss.numpy())
    for value_ in terms.values():
        assert np.all(np.isfinite(value_.numpy()))
    out = model(x)
    assert out[features.CLUSTER].dtype == tf.int64 and out[features.CLUSTER].shape == (5,)
    assert out[features.CLUSTER_PROBABILITIES].shape == (5, 4)
    assert out[features.LATENT_MEAN].shape == (5, 3)
    assert out[features.ELBO].shape == (5,)
    assert np.all(np.isfinite(out[features.ELBO].numpy()))
    np.testing.assert_allclose(out[features.CLUSTER_PROBABILITIES].numpy().sum(-1), 1.0, rtol=1e-5)


def _elbo_only_model() -> GMVAE:
    """A GMVAE whose training loss is the negative ELBO alone: no self-training, no balance term, no KL warm-up."""
    config = GMVAEConfig(input_dim=16, n_components=4, latent_dim=3, hidden_units=(8,), kl_warmup_epochs=0,
                         self_training_weight=0.0, balance_weight=0.0, seed=0)
    model = GMVAE(config)
    model(tf.zeros([1, 16]))
    # Distinct weights and scales, so no gradient vanishes by symmetry of the initial mixture.
    model.prior.set_mixture(np.array([0.1, 0.2, 0.3, 0.4]), np.random.default_rng(1).normal(size=(4, 3)),
                            np.linspace(0.5, 2.0, 12).reshape(4, 3))
    return model


def test_elbo_gradient_reaches_every_mixture_parameter() -> None:
    model = _elbo_only_model()
    x = tf.constant(np.random.default_rng(0).random((8, 16)), tf.float32)
    prior_vars = {"logits": model.prior.logits, "loc": model.prior.loc, "raw_scale": model.prior.raw_scale}
    with tf.GradientTape(persistent=True) as tape:
        loss, terms = model.loss_terms(x)
        kl = tf.reduce_mean(terms["kl"])
    assert set(terms) == {"reconstruction", "kl"}, "the loss must be the negative ELBO alone in this test"
    for name, grad in zip(prior_vars, tape.gradient(loss, list(prior_vars.values())), strict=True):
        assert grad is not None, f"the ELBO loss does not depend on prior.{name}"
        assert np.all(np.isfinite(grad.numpy())) and np.any(grad.numpy() != 0), f"zero ELBO gradient on prior.{name}"
    for name, grad in zip(prior_vars, tape.gradient(kl, list(prior_vars.values())), strict=True):
        assert grad is not None and np.any(grad.numpy() != 0), f"the KL term does not reach prior.{name}"
    # The per-example ELBO the model outputs (the anomaly score) depends on the mixture as well.
    with tf.GradientTape() as tape:
        elbo = tf.reduce_sum(model(x)[features.ELBO])
    for name, grad in zip(prior_vars, tape.gradient(elbo, list(prior_vars.values())), strict=True):
        assert grad is not None and np.any(grad.numpy() != 0), f"the output ELBO does not reach prior.{name}"


def test_train_step_on_the_elbo_alone_updates_every_mixture_parameter() -> None:
    import tf_keras as keras

    model = _elbo_only_model()
    model.compile(keras.optimizers.SGD(0.1))
    before = [v.numpy().copy() for v in model.prior.trainable_variables]
    assert len(before) == 3
    logs = model.train_on_batch(np.random.default_rng(0).random((8, 16)).astype("float32"), return_dict=True)
    assert "self_training" not in logs and "balance" not in logs
    for old, var in zip(before, model.prior.trainable_variables, strict=True):
        assert not np.allclose(old, var.numpy()), f"train step left prior variable {var.name} unchanged"
