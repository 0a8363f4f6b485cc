"""The GMVAE training recipe: AE pre-training, GMM initialisation of the prior, fine-tuning."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras
from sklearn.mixture import GaussianMixture

from model.config import GMVAEConfig
from model.gmvae import GMVAE


class KLWarmup(keras.callbacks.Callback):
    """Linearly raises the KL weight from 1/epochs to 1 over the first `epochs` epochs."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.model.kl_weight.assign(min(1.0, (epoch + 1) / self.epochs) if self.epochs > 0 else 1.0)


def _progress(verbose: int, desc: str) -> tuple[list[keras.callbacks.Callback], int]:
    """verbose 1: one tqdm bar over epochs; 2: Keras per-epoch lines; 0: silent."""
    if verbose == 1:
        from tqdm.keras import TqdmCallback

        return [TqdmCallback(verbose=0, desc=desc)], 0
    return [], 2 if verbose >= 2 else 0


def latent_means(model: GMVAE, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """E[z|x] for every row of x."""
    return np.concatenate([model.encode(x[i : i + batch_size]).loc.numpy() for i in range(0, len(x), batch_size)])


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite; training stopped and nothing should be exported."""


def _finite_history(history: dict[str, list], stage: str) -> dict[str, list]:
    """``history`` unchanged, or ``TrainingDivergedError`` naming the first non-finite loss and its epoch."""
    for name, values in history.items():
        for epoch, value in enumerate(values, start=1):
            if not np.isfinite(value):
                raise TrainingDivergedError(
                    f"{stage}: {name} became {value} in epoch {epoch}, so training was stopped and no model is "
                    "exported; lower the learning rate or check the inputs.")
    return history


def _backup(checkpoint_dir: str | None, stage: str) -> list[keras.callbacks.Callback]:
    """Per-epoch BackupAndRestore for one stage: a restarted fit continues after its last finished epoch."""
    if checkpoint_dir is None:
        return []
    return [keras.callbacks.BackupAndRestore(os.path.join(checkpoint_dir, f"{stage}-backup"))]


def pretrain(
    model: GMVAE, x: np.ndarray, strategy: tf.distribute.Strategy, verbose: int = 1, checkpoint_dir: str | None = None
) -> dict[str, list]:
    """Stage 1: train encoder mean + decoder as an autoencoder (augmented input if configured)."""
    cfg = model.config
    if cfg.pretrain_epochs <= 0:
        return {}
    with strategy.scope():
        model.pretraining = True
        model.compile(keras.optimizers.Adam(cfg.pretrain_learning_rate))
    progress, keras_verbose = _progress(verbose, "pretrain")
    hist = model.fit(
        x,
        batch_size=cfg.batch_size,
        epochs=cfg.pretrain_epochs,
        shuffle=True,
        verbose=keras_verbose,
        callbacks=[*_backup(checkpoint_dir, "pretrain"), keras.callbacks.TerminateOnNaN(), *progress],
    )
    model.pretraining = False
    return _finite_history({"pretrain_" + k: v for k, v in hist.history.items()}, "pre-training")


def init_mixture(model: GMVAE, x: np.ndarray) -> GaussianMixture:
    """Stage 2: fit diagonal GMMs on E[z|x] from `gmm_n_init` random starts and copy one into the prior.

    With `init_selection="balance"` the restart whose hard assignments have the most even cluster
    sizes (highest occupancy entropy; ties broken by likelihood) is kept; on mnist10k that entropy
    correlated 0.91 with ACC over 20 restarts while the likelihood correlated 0.44 (bench/RESULTS.md),
    because low-entropy solutions are the ones that merge two classes. "likelihood" keeps the best fit.
    """
    cfg = model.config
    z = latent_means(model, x)
    best, best_key = None, None
    for i in range(max(cfg.gmm_n_init, 1)):
        gmm = GaussianMixture(
            cfg.n_components, covariance_type="diag", random_state=cfg.seed * 1000 + i, reg_covar=1e-4
        ).fit(z)
        share = np.bincount(gmm.predict(z), minlength=cfg.n_components) / len(z)
        entropy = float(-(share * np.log(np.maximum(share, 1e-12))).sum())
        key = (round(entropy, 3), gmm.score(z)) if cfg.init_selection == "balance" else (gmm.score(z),)
        if best_key is None or key > best_key:
            best, best_key = gmm, key
    model.prior.set_mixture(best.weights_, best.means_, best.covariances_)
    return best


def fine_tune(
    model: GMVAE,
    x: np.ndarray,
    strategy: tf.distribute.Strategy,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 1,
    checkpoint_dir: str | None = None,
) -> dict[str, list]:
    """Stage 3: minimise the negative ELBO (+ configured terms) with KL warm-up and cosine LR decay."""
    cfg = model.config
    if cfg.epochs <= 0:
        return {}
    steps = cfg.epochs * int(np.ceil(len(x) / cfg.batch_size))
    with strategy.scope():
        model.pretraining = False
        model.compile(
            keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps, alpha=0.1)),
            prior_optimizer=keras.optimizers.Adam(
                keras.optimizers.schedules.CosineDecay(cfg.prior_learning_rate, steps, alpha=0.1)
            ),
        )
    progress, keras_verbose = _progress(verbose, "fine-tune")
    hist = model.fit(
        x,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        shuffle=True,
        verbose=keras_verbose,
        callbacks=[
            *_backup(checkpoint_dir, "fine_tune"),
            KLWarmup(cfg.kl_warmup_epochs),
            keras.callbacks.TerminateOnNaN(),
            *callbacks,
            *progress,
        ],
    )
    return _finite_history(dict(hist.history), "fine-tuning")


def build_model(config: GMVAEConfig, strategy: tf.distribute.Strategy | None = None) -> GMVAE:
    """A built (variables created) GMVAE under `strategy`'s scope."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = GMVAE(config)
        model(tf.zeros([1, config.input_dim]))
    return model


def _stage_done(checkpoint_dir: str | None, stage: str) -> str | None:
    """The weights saved at the end of ``stage``, if a previous attempt got that far."""
    if checkpoint_dir is None:
        return None
    weights = os.path.join(checkpoint_dir, stage, "weights")
    return weights if tf.io.gfile.exists(os.path.join(checkpoint_dir, stage, "DONE")) else None


def _mark_done(model: GMVAE, checkpoint_dir: str | None, stage: str) -> None:
    if checkpoint_dir is None:
        return
    model.save_weights(os.path.join(checkpoint_dir, stage, "weights"))
    with tf.io.gfile.GFile(os.path.join(checkpoint_dir, stage, "DONE"), "w") as f:
        f.write(stage)


def fit_gmvae(
    x: np.ndarray,
    config: GMVAEConfig,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 1,
    checkpoint_dir: str | None = None,
) -> tuple[GMVAE, dict[str, Any]]:
    """Train a GMVAE on x [N, input_dim] (floats in [0, 1] for Bernoulli) with the full recipe.

    Deterministic given `config.seed` (seeds Python/NumPy/TF and turns on TF op determinism).
    `callbacks` (TensorBoard, ...) are passed to the fine-tuning fit. With `checkpoint_dir`, an interrupted
    training resumes when called again with the same directory: finished stages are reloaded (their weights are
    saved at the end of each stage) and the interrupted stage continues after its last finished epoch
    (Keras BackupAndRestore). A NaN or infinite loss stops training with `TrainingDivergedError`.
    Returns the model and a history dict (per-epoch losses of the stages run, stage seconds, `resumed_stages`).
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != config.input_dim:
        raise ValueError(f"x must have shape [N, {config.input_dim}], got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values")
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    strategy = strategy or tf.distribute.get_strategy()
    model = build_model(config, strategy)
    history: dict[str, Any] = {"resumed_stages": []}
    initialised, pretrained = _stage_done(checkpoint_dir, "init"), _stage_done(checkpoint_dir, "pretrain")
    start = time.perf_counter()
    if initialised or pretrained:
        model.load_weights(initialised or pretrained)
        history["resumed_stages"] += ["pretrain", "init"] if initialised else ["pretrain"]
    else:
        history.update(pretrain(model, x, strategy, verbose, checkpoint_dir))
        _mark_done(model, checkpoint_dir, "pretrain")
    history["pretrain_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    if not initialised:
        init_mixture(model, x)
        _mark_done(model, checkpoint_dir, "init")
    history["init_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    history.update(fine_tune(model, x, strategy, callbacks, verbose, checkpoint_dir))
    history["fine_tune_seconds"] = time.perf_counter() - start
    return model, history
