"""Gaussian-mixture VAE (GMVAE / VaDE) as a Keras 2 model with its own `train_step`.

Generative model: c ~ Categorical(pi), z | c ~ N(mu_c, diag(sigma_c^2)), x | z ~ Bernoulli(decoder(z))
(images) or, per table column, Gaussian (Bernoulli for two-valued columns: `GMVAE.log_likelihood`). The marginal
prior p(z) is a `tfd.MixtureSameFamily` whose weights, means and scales are trainable variables of `MixturePrior`.

Loss (negative ELBO). KL(q(z|x) || p(z)) to a mixture has no closed form. We use the VaDE
decomposition (Jiang et al. 2017): with q(c|x) := p(c|z), z ~ q(z|x),

    -ELBO = -E_q[log p(x|z)] + sum_c q(c|x) KL(q(z|x) || p(z|c)) + KL(q(c|x) || p(c)),

where both KL terms are analytic. It is an upper bound on the exact negative ELBO with the
mixture marginal, but its variance is much lower than that of the single-sample Monte-Carlo
estimate log q(z|x) - log p(z), and it directly trains the component posterior that defines
the clusters. The cluster of an example is argmax_c p(c | z = E[z|x]).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from model import features
from model.config import GMVAEConfig

tfd = tfp.distributions


def _softplus_inverse(x: np.ndarray | float) -> np.ndarray:
    """log(exp(x) - 1) without overflow (x itself above 30, where they agree to float32 precision)."""
    x = np.maximum(np.asarray(x, dtype=np.float64), 1e-6)
    return np.where(x > 30.0, x, np.log(np.expm1(np.minimum(x, 30.0)))).astype(np.float32)


class MixturePrior(keras.layers.Layer):
    """Learned Gaussian-mixture prior p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)).

    Scales are `min_scale + softplus(raw)`, so no component can shrink to a point.
    """

    def __init__(
        self,
        n_components: int,
        latent_dim: int,
        min_scale: float = 0.05,
        learn_weights: bool = True,
        seed: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self.n_components = n_components
        self.latent_dim = latent_dim
        self.min_scale = min_scale
        self.logits = self.add_weight(name="logits", shape=[n_components], initializer="zeros", trainable=learn_weights)
        self.loc = self.add_weight(
            name="loc",
            shape=[n_components, latent_dim],
            initializer=keras.initializers.RandomNormal(seed=seed),
        )
        self.raw_scale = self.add_weight(
            name="raw_scale",
            shape=[n_components, latent_dim],
            initializer=keras.initializers.Constant(_softplus_inverse(max(1.0 - min_scale, 1e-3))),
        )

    @property
    def scale(self) -> tf.Tensor:
        return self.min_scale + tf.nn.softplus(self.raw_scale)

    def mixture_weights(self) -> tf.Tensor:
        """The mixture weights pi: [K]."""
        return tf.nn.softmax(self.logits)

    def distribution(self) -> tfd.MixtureSameFamily:
        """The prior p(z) as a TFP distribution."""
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=self.logits),
            components_distribution=tfd.MultivariateNormalDiag(loc=self.loc, scale_diag=self.scale),
        )

    def joint_log_prob(self, z: tf.Tensor) -> tf.Tensor:
        """log pi_k + log N(z; mu_k, sigma_k) for every component: [B, K]."""
        prior = self.distribution()
        log_weights = tf.nn.log_softmax(prior.mixture_distribution.logits_parameter())
        return log_weights + prior.components_distribution.log_prob(z[..., tf.newaxis, :])

    def log_posterior(self, z: tf.Tensor) -> tf.Tensor:
        """log p(c = k | z): [B, K]."""
        return tf.nn.log_softmax(self.joint_log_prob(z), axis=-1)

    def kl_to_components(self, posterior: tfd.Normal) -> tf.Tensor:
        """KL(q(z|x) || p(z|c=k)) for every component; `posterior` has batch [B, D]: [B, K]."""
        q = tfd.Normal(posterior.loc[:, tf.newaxis, :], posterior.scale[:, tf.newaxis, :])
        return tf.reduce_sum(tfd.kl_divergence(q, tfd.Normal(self.loc, self.scale)), axis=-1)

    def set_mixture(self, weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> None:
        """Set the mixture from (e.g. GMM-fitted) weights [K], means [K, D] and variances [K, D]."""
        arrays = (np.asarray(weights), np.asarray(means), np.asarray(variances))
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise ValueError("the mixture initialisation produced non-finite weights, means or variances")
        std = np.sqrt(np.maximum(np.asarray(variances, dtype=np.float64), 0.0))
        self.logits.assign(np.log(np.maximum(weights, 1e-6)).astype(np.float32))
        self.loc.assign(np.asarray(means, dtype=np.float32))
        self.raw_scale.assign(_softplus_inverse(np.maximum(std - self.min_scale, 1e-3)))


def _mlp(units: tuple[int, ...], output_dim: int, name: str, seed: int) -> keras.Sequential:
    layers = [
        keras.layers.Dense(u, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed + i))
        for i, u in enumerate(units)
    ]
    layers.append(keras.layers.Dense(output_dim, kernel_initializer=keras.initializers.GlorotUniform(seed + 99)))
    return keras.Sequential(layers, name=name)


def _missing_masks(config: GMVAEConfig) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Constants for `config.missing_groups` over the input columns [input_dim]: the column whose value > 0 marks
    each column missing (itself when none), whether a column has such a marker, and whether it is an indicator."""
    source = np.arange(config.input_dim)
    marked = np.zeros(config.input_dim, dtype=bool)
    indicator = np.zeros(config.input_dim, dtype=bool)
    for first, *columns in config.missing_groups:
        source[columns], marked[columns], indicator[first] = first, True, True
    return tf.constant(source, tf.int32), tf.constant(marked), tf.constant(indicator)


def _augmenter(config: GMVAEConfig) -> keras.Sequential:
    """Random shift / rotation / zoom of flat images (DEC-DA); only active when training=True."""
    h, w = config.image_shape
    seed = config.seed
    return keras.Sequential(
        [
            keras.layers.Reshape((h, w, 1)),
            keras.layers.RandomTranslation(
                config.max_translation, config.max_translation, fill_mode="constant", seed=seed + 1
            ),
            keras.layers.RandomRotation(config.max_rotation, fill_mode="constant", seed=seed + 2),
            keras.layers.RandomZoom(config.max_zoom, fill_mode="constant", seed=seed + 3),
            keras.layers.Reshape((h * w,)),
        ],
        name="augment",
    )


class GMVAE(keras.Model):
    """Encoder q(z|x), decoder p(x|z), mixture prior p(z); clusters = p(c|z).

    Two training modes share `train_step`: with `pretraining=True` it trains a plain
    autoencoder (encoder mean -> decoder) on the reconstruction loss; otherwise it minimises
    the negative ELBO plus the optional balance and self-training terms of the config.
    Re-`compile` after switching the mode.
    """

    def __init__(self, config: GMVAEConfig, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.encoder = _mlp(config.hidden_units, 2 * config.latent_dim, "encoder", config.seed * 1000)
        self.decoder = _mlp(config.hidden_units[::-1], config.input_dim, "decoder", config.seed * 1000 + 500)
        self.prior = MixturePrior(
            config.n_components,
            config.latent_dim,
            min_scale=config.min_scale,
            learn_weights=config.learn_mixture_weights,
            seed=config.seed,
            name="prior",
        )
        self.log_noise = (
            self.add_weight(name="log_noise", shape=[config.input_dim], initializer="zeros")
            if config.likelihood == "gaussian"
            else None
        )
        binary = np.isin(np.arange(config.input_dim), config.binary_features or ())
        self._binary_mask = tf.constant(binary) if self.log_noise is not None and binary.any() else None
        self._missing = _missing_masks(config) if self.log_noise is not None and config.missing_groups else None
        self.augmenter = _augmenter(config) if config.augmenting else None
        if self.augmenter is not None:
            self.augmenter.build((None, config.input_dim))
        self.kl_weight = tf.Variable(1.0, trainable=False, name="kl_weight")
        self.pretraining = False
        self.prior_optimizer: keras.optimizers.Optimizer | None = None
        self._trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("loss", "reconstruction", "kl", "balance", "self_training", "init_label")
        }

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self._trackers.values())

    def compile(
        self,
        optimizer: keras.optimizers.Optimizer,
        prior_optimizer: keras.optimizers.Optimizer | None = None,
        **kwargs: object,
    ) -> None:
        """`prior_optimizer` (e.g. a lower learning rate) updates the mixture; default: `optimizer`."""
        super().compile(optimizer=optimizer, **kwargs)
        self.prior_optimizer = prior_optimizer or optimizer.__class__.from_config(optimizer.get_config())

    # ---- distributions -------------------------------------------------------------------
    def encode(self, x: tf.Tensor, training: bool = False) -> tfd.Normal:
        """q(z|x) as a batch [B, D] of independent normals (a diagonal Gaussian)."""
        h = self.encoder(x, training=training)
        loc, raw_scale = tf.split(h, 2, axis=-1)
        return tfd.Normal(loc=loc, scale=1e-3 + tf.nn.softplus(raw_scale - 2.0))

    def log_likelihood(self, z: tf.Tensor, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        """log p(x|z) per example [B] for codes z [B, D] and inputs x [B, input_dim].

        Bernoulli on images; on tables a Gaussian per column with a learned noise std, except the two-valued
        columns of `config.binary_features`, whose decoder output is the logit of x > 0 (a standardised two-valued
        column has its mean, 0, between its values). A Gaussian would reward their exact reconstruction without
        bound as the noise std shrinks, so a one-hot or missing-indicator column would outweigh the numbers.
        With `config.missing_groups`, indicators are not reconstructed and a value marked missing (its imputed
        mean) does not count: the likelihood is that of the observed values only.
        """
        out = self.decoder(z, training=training)
        if self.log_noise is None:
            return tfd.Independent(tfd.Bernoulli(logits=out), reinterpreted_batch_ndims=1).log_prob(x)
        # 0.5413 = softplus^-1(1): the noise std starts at 1; the floor keeps constant columns finite
        per_column = tfd.Normal(out, 1e-2 + tf.nn.softplus(self.log_noise + 0.5413)).log_prob(x)
        if self._binary_mask is not None:
            bernoulli = -tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(x > 0.0, tf.float32), logits=out)
            per_column = tf.where(self._binary_mask, bernoulli, per_column)
        if self._missing is not None:
            source, marked, indicator = self._missing
            observed = tf.logical_or(tf.logical_not(marked), tf.gather(x, source, axis=-1) <= 0.0)
            per_column = tf.where(tf.logical_and(observed, tf.logical_not(indicator)), per_column, 0.0)
        return tf.reduce_sum(per_column, axis=-1)

    def kl_divergence(self, posterior: tfd.Normal, log_gamma: tf.Tensor) -> tf.Tensor:
        """VaDE KL: sum_k gamma_k KL(q(z|x)||p(z|k)) + KL(gamma||pi), per example [B]."""
        gamma = tf.exp(log_gamma)
        kl_z = tf.reduce_sum(gamma * self.prior.kl_to_components(posterior), axis=-1)
        kl_c = tfd.kl_divergence(tfd.Categorical(logits=log_gamma), self.prior.distribution().mixture_distribution)
        return kl_z + kl_c

    # ---- inference -----------------------------------------------------------------------
    def call(self, x: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """The four model outputs for a batch of model inputs [B, input_dim].

        `elbo` is evaluated deterministically at z = E[z|x] (reconstruction term) with the
        analytic VaDE KL, so it is a reproducible per-example anomaly score.
        """
        x = tf.convert_to_tensor(x, tf.float32)
        posterior = self.encode(x, training=training)
        log_gamma = self.prior.log_posterior(posterior.loc)
        elbo = self.log_likelihood(posterior.loc, x) - self.kl_divergence(posterior, log_gamma)
        return {
            features.CLUSTER: tf.argmax(log_gamma, axis=-1, output_type=tf.int64),
            features.CLUSTER_PROBABILITIES: tf.exp(log_gamma),
            features.LATENT_MEAN: posterior.loc,
            features.ELBO: elbo,
        }

    def predict_outputs(self, x: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
        """`call` over a numpy array in batches, as numpy arrays."""
        parts = [self(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return {k: np.concatenate([p[k].numpy() for p in parts]) for k in features.OUTPUT_KEYS}

    def soft_assignment(self, z: tf.Tensor) -> tf.Tensor:
        """DEC's Student-t similarity of codes to the component means, normalised: [B, K]."""
        q = 1.0 / (1.0 + tf.reduce_sum(tf.square(z[:, tf.newaxis, :] - self.prior.loc), axis=-1))
        return q / tf.reduce_sum(q, axis=-1, keepdims=True)

    # ---- training ------------------------------------------------------------------------
    def network_variables(self) -> list[tf.Variable]:
        """Encoder, decoder and noise variables (everything but the prior)."""
        prior_ids = {id(v) for v in self.prior.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in prior_ids]

    def loss_terms(self, x: tf.Tensor, init_labels: tf.Tensor | None = None) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Per-replica scalar loss (already scaled for cross-replica summation) and terms.

        ``init_labels`` [B] (int, -1 = none): the clusters of the mixture initialisation, whose cross-entropy under
        q(c|x) (weight ``init_label_weight``) keeps fine-tuning from dropping what the initialisation found.
        """
        cfg = self.config
        n_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        x_in = self.augmenter(x, training=True) if self.augmenter is not None else x
        if self.pretraining:
            recon = -self.log_likelihood(self.encode(x_in, training=True).loc, x_in, training=True)
            return tf.nn.compute_average_loss(recon), {"reconstruction": recon}
        target = x if cfg.reconstruct_clean else x_in
        posterior = self.encode(x_in, training=True)
        z = posterior.sample()
        log_gamma = self.prior.log_posterior(z)
        recon = -self.log_likelihood(z, target, training=True)
        kl = self.kl_divergence(posterior, log_gamma)
        per_example = recon + self.kl_weight * kl
        terms = {"reconstruction": recon, "kl": kl}
        if init_labels is not None and cfg.init_label_weight > 0:
            labelled = init_labels >= 0
            log_q = tf.gather(log_gamma, tf.maximum(init_labels, 0), batch_dims=1)
            init_label = -tf.where(labelled, log_q, tf.zeros_like(log_q))
            per_example += cfg.init_label_weight * init_label
            terms["init_label"] = init_label
        if cfg.self_training_weight > 0:
            clean = posterior if self.augmenter is None else self.encode(x, training=True)
            q = tf.stop_gradient(self.soft_assignment(clean.loc))
            # DEC's target q^2 / f_k, times the learned weight pi_k: the batch frequency f_k is pulled to pi_k,
            # not to equal shares (so unequal clusters keep their sizes)
            p = q**2 * tf.stop_gradient(self.prior.mixture_weights()) / tf.reduce_sum(q, axis=0, keepdims=True)
            p = p / tf.reduce_sum(p, axis=-1, keepdims=True)
            self_training = -tf.reduce_sum(p * tf.math.log(self.soft_assignment(posterior.loc) + 1e-8), axis=-1)
            per_example += cfg.self_training_weight * self_training
            terms["self_training"] = self_training
        loss = tf.nn.compute_average_loss(per_example)
        if cfg.balance_weight > 0:
            # KL(batch-mean posterior || learned weights): no component silently empties or swallows others,
            # and the weights themselves follow the data (they are trained by the ELBO's KL(q(c|x) || pi))
            # a replica can get no rows (the last global batch smaller than the replicas): its term is 0, not NaN
            rows = tf.shape(log_gamma)[0]
            mean_gamma = tf.reduce_sum(tf.exp(log_gamma), axis=0) / tf.cast(tf.maximum(rows, 1), tf.float32)
            log_pi = tf.stop_gradient(tf.math.log(self.prior.mixture_weights() + 1e-8))
            balance = tf.reduce_sum(mean_gamma * (tf.math.log(mean_gamma + 1e-8) - log_pi))
            balance = tf.where(rows > 0, balance, 0.0)
            loss += cfg.balance_weight * balance / tf.cast(n_replicas, tf.float32)
            terms["balance"] = balance
        return loss, terms

    def train_step(self, data: tf.Tensor | tuple) -> dict[str, tf.Tensor]:
        x, init_labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, tf.float32)
        network_vars = self.network_variables()
        prior_vars = [] if self.pretraining else self.prior.trainable_variables
        with tf.GradientTape() as tape:
            loss, terms = self.loss_terms(x, init_labels)
        grads = tape.gradient(loss, network_vars + prior_vars)
        self.optimizer.apply_gradients(zip(grads[: len(network_vars)], network_vars, strict=True))
        if prior_vars:
            self.prior_optimizer.apply_gradients(zip(grads[len(network_vars) :], prior_vars, strict=True))
        n_replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        # a replica without rows (see `loss_terms`) adds nothing to the epoch means
        has_rows = tf.cast(tf.shape(x)[0] > 0, tf.float32)
        self._trackers["loss"].update_state(loss * n_replicas, sample_weight=has_rows)
        for name, value in terms.items():
            self._trackers[name].update_state(value, sample_weight=has_rows)
        return {name: t.result() for name, t in self._trackers.items() if name == "loss" or name in terms}
