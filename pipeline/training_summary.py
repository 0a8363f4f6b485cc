"""What the Trainer records beside the SavedModel for the evaluation report: K and why, and two baselines.

Written into the Model artifact directory (the parent of ``Format-Serving``, never into the SavedModel that is
pushed to TF Serving): the :class:`~model.training_record.TrainingSummary` (``training_summary.json``: K, how it was
chosen, the K scores, the init method, the learned mixture weights, stage seconds, the model config and the two
fitted baselines of `model.baselines`) and ``pretrained_encoder.weights.h5`` (the autoencoder's encoder before
fine-tuning, which the AE + GMM baseline needs).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from model import baselines
from model.config import STAGES, TOTAL_SECONDS, seconds_key
from model.data import sample_of
from model.gmvae import GMVAE
from model.training import latent_means
from model.training_record import TrainingSummary


def model_artifact_dir(serving_model_dir: str) -> str:
    """The Model artifact directory: the parent of the SavedModel directory."""
    return os.path.dirname(serving_model_dir.rstrip("/"))


def save_pretrained_encoder(model: GMVAE, model_dir: str) -> str:
    """Keras 2 h5 weights of the encoder (written locally, then copied: h5py cannot write to gs://)."""
    target = os.path.join(model_dir, baselines.PRETRAINED_ENCODER_FILE)
    tf.io.gfile.makedirs(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, baselines.PRETRAINED_ENCODER_FILE)
        model.encoder.save_weights(local)
        tf.io.gfile.copy(local, target, overwrite=True)
    return target


def fit_baselines(model: GMVAE, x: np.ndarray, model_dir: str) -> dict[str, Any]:
    """Called when the mixture is initialised (K final, encoder still the pre-trained one): save the encoder and
    fit both baselines with the model's K on (a bounded sample of) the training inputs.

    Returns {"baselines": {name: parameters}} or, when a fit fails, {"baseline_error": why}: the baselines are
    informational and never stop a training.
    """
    k = int(model.config.n_components)
    seed = int(model.config.seed)
    sample = sample_of(x, baselines.MAX_FIT_ROWS, seed)
    try:
        save_pretrained_encoder(model, model_dir)
        fitted = {
            baselines.GMM_INPUTS: baselines.fit_baseline(sample, k, seed),
            baselines.AE_GMM: baselines.fit_baseline(latent_means(model, sample), k, seed, reduce=False),
        }
    except (ValueError, np.linalg.LinAlgError, OSError, ImportError) as error:
        logging.warning("Baselines for the evaluation report not fitted: %s", error)
        return {"baseline_error": str(error)}
    logging.info("Baselines fitted with K=%d on %d training rows", k, len(sample))
    return {"baselines": fitted}


def summary(model: GMVAE, history: dict[str, Any], n_train_rows: int, fitted: dict[str, Any]) -> TrainingSummary:
    """The record: K and why, the learned mixture weights, stage seconds, config, and the baselines of
    :func:`fit_baselines` (``fitted``)."""
    seconds = {stage: float(history[seconds_key(stage)]) for stage in STAGES
               if seconds_key(stage) in history}
    seconds[TOTAL_SECONDS] = float(sum(seconds.values()))
    return TrainingSummary(
        n_components=int(history.get("n_components", model.config.n_components)),
        config=dataclasses.asdict(model.config),
        mixture_weights=tuple(float(w) for w in model.prior.mixture_weights().numpy()),
        k_reason=history.get("k_reason"),
        k_scores={str(k): float(v) for k, v in (history.get("k_scores") or {}).items()},
        init_method=history.get("init_method"),
        seconds=seconds,
        resumed_stages=tuple(history.get("resumed_stages", ())),
        n_train_rows=int(n_train_rows),
        pretrained_encoder=baselines.PRETRAINED_ENCODER_FILE,
        baselines=fitted.get("baselines"),
        baseline_error=fitted.get("baseline_error"),
    )
