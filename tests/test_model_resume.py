"""Training that survives interruption (resume from the last finished epoch) and stops clearly on NaN losses."""

import json
import os

import numpy as np
import pytest
import tf_keras as keras

from model import metrics, training
from model.config import GMVAEConfig, seconds_key
from model.training import TrainingDivergedError, fit_gmvae
from pipeline.data import load_digits_arrays

pytestmark = pytest.mark.e2e

CONFIG = GMVAEConfig.for_digits(pretrain_epochs=30, epochs=12, kl_warmup_epochs=3, gmm_n_init=3)


class Preempted(Exception):
    """Stands in for a killed or preempted worker."""


class KillAfterEpoch(keras.callbacks.Callback):
    """Raises at the end of fine-tuning epoch ``epoch`` (1-based), after BackupAndRestore saved it."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.kill_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.kill_epoch:
            raise Preempted(f"killed after epoch {self.kill_epoch}")


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits_arrays()
    return images.reshape(len(images), -1) / 16.0, labels


@pytest.fixture(scope="module")
def uninterrupted(digits):
    x, labels = digits
    model, history = fit_gmvae(x, CONFIG, verbose=0)
    return model, history, metrics.cluster_accuracy(labels, model.predict_outputs(x)["cluster"])


def test_killed_fine_tuning_resumes_from_its_last_epoch(tmp_path, digits, uninterrupted):
    x, labels = digits
    checkpoint_dir = str(tmp_path / "ckpt")
    with pytest.raises(Preempted):
        fit_gmvae(x, CONFIG, callbacks=[KillAfterEpoch(7)], verbose=0, checkpoint_dir=checkpoint_dir)

    model, history = fit_gmvae(x, CONFIG, verbose=0, checkpoint_dir=checkpoint_dir)
    assert history["resumed_stages"] == ["pretrain", "init"], "finished stages are reloaded, not retrained"
    assert "pretrain_loss" not in history
    for stage in ("pretrain", "init"):  # a reloaded stage reports the time it took when it was made
        with open(os.path.join(checkpoint_dir, stage, "DONE")) as f:
            made = json.load(f)["seconds"]
        assert history[seconds_key(stage)] == made > 0
    assert len(history["loss"]) == CONFIG.epochs - 7, "fine-tuning continued after epoch 7"

    _, full_history, full_acc = uninterrupted
    acc = metrics.cluster_accuracy(labels, model.predict_outputs(x)["cluster"])
    # Same weights up to epoch 7; only the shuffling order of later epochs differs, so the final loss agrees with
    # the uninterrupted run within 5% and the clustering is at least as good within 5 points of accuracy.
    assert history["loss"][-1] == pytest.approx(full_history["loss"][-1], rel=0.05)
    assert acc >= full_acc - 0.05


def test_killed_pre_training_resumes_and_finishes(tmp_path, digits, uninterrupted, monkeypatch):
    x, labels = digits

    class KillPretrain(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if self.model.pretraining and epoch + 1 == 20:
                raise Preempted("killed in pre-training")

    checkpoint_dir = str(tmp_path / "ckpt")
    original = training._backup
    with monkeypatch.context() as patch:
        patch.setattr(training, "_backup", lambda d, stage: [*original(d, stage), KillPretrain()])
        with pytest.raises(Preempted):
            fit_gmvae(x, CONFIG, verbose=0, checkpoint_dir=checkpoint_dir)
    model, history = fit_gmvae(x, CONFIG, verbose=0, checkpoint_dir=checkpoint_dir)
    assert history["resumed_stages"] == []
    assert len(history["pretrain_loss"]) == CONFIG.pretrain_epochs - 20
    _, full_history, full_acc = uninterrupted
    assert history["loss"][-1] == pytest.approx(full_history["loss"][-1], rel=0.05)
    assert metrics.cluster_accuracy(labels, model.predict_outputs(x)["cluster"]) >= full_acc - 0.05


def test_nan_loss_stops_training_with_a_clear_error(digits):
    x, _ = digits

    class PoisonWeights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 1:
                weights = self.model.decoder.trainable_weights[0]
                weights.assign(np.full(weights.shape, np.nan, dtype=np.float32))

    with pytest.raises(TrainingDivergedError, match=r"fine-tuning: loss became nan in epoch 3, so training was "
                                                    r"stopped and no model is exported"):
        fit_gmvae(x, CONFIG.replace(pretrain_epochs=2), callbacks=[PoisonWeights()], verbose=0)


def test_resume_after_the_init_stage_starts_fine_tuning_with_a_fresh_optimizer(tmp_path, digits):
    """A run stopped right after stage 2 resumes with fine-tuning's own learning-rate schedule at step 0."""
    x, _ = digits
    config = CONFIG.replace(pretrain_epochs=5, epochs=2)
    checkpoint_dir = str(tmp_path / "ckpt")

    class StopAtFineTuning(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            raise Preempted("stopped after the init stage")

    with pytest.raises(Preempted):
        fit_gmvae(x, config, callbacks=[StopAtFineTuning()], verbose=0, checkpoint_dir=checkpoint_dir)
    model, history = fit_gmvae(x, config, verbose=0, checkpoint_dir=checkpoint_dir)
    assert history["resumed_stages"] == ["pretrain", "init"]
    steps_per_epoch = int(np.ceil(len(x) / config.batch_size))
    assert int(model.optimizer.iterations) == config.epochs * steps_per_epoch, "no pre-training steps carried over"
