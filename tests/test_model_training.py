"""Training recipe: determinism, callbacks, config validation; slow digits run (e2e)."""

import numpy as np
import pytest
import tf_keras as keras
from sklearn.datasets import load_digits

from model import features, metrics
from model.config import GMVAEConfig
from model.training import fit_gmvae

TINY = GMVAEConfig.for_digits(hidden_units=(16,), pretrain_epochs=1, epochs=2, gmm_n_init=1, batch_size=100)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return (d.data / 16.0).astype("float32"), d.target


def test_same_seed_same_result_and_callbacks_honoured(digits) -> None:
    x = digits[0][:300]
    seen: list[int] = []
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    model_a, hist_a = fit_gmvae(x, TINY, callbacks=[callback], verbose=0)
    model_b, hist_b = fit_gmvae(x, TINY, verbose=0)
    assert seen == [0, 1]  # the callback ran in the fine-tuning fit
    assert np.isfinite(hist_a["loss"]).all() and np.isfinite(hist_a["pretrain_loss"]).all()
    np.testing.assert_array_equal(hist_a["loss"], hist_b["loss"])
    out_a, out_b = model_a.predict_outputs(x), model_b.predict_outputs(x)
    np.testing.assert_array_equal(out_a[features.LATENT_MEAN], out_b[features.LATENT_MEAN])
    model_c, _ = fit_gmvae(x, TINY.replace(seed=1), verbose=0)
    assert not np.allclose(model_c.predict_outputs(x)[features.LATENT_MEAN], out_a[features.LATENT_MEAN])


def test_bad_inputs_rejected(digits) -> None:
    with pytest.raises(ValueError):
        fit_gmvae(digits[0][:, :10], TINY, verbose=0)
    bad = digits[0][:50].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        fit_gmvae(bad, TINY, verbose=0)
    with pytest.raises(ValueError):
        GMVAEConfig(likelihood="poisson")
    with pytest.raises(ValueError):
        GMVAEConfig(input_dim=64, image_shape=(28, 28))


@pytest.mark.e2e
def test_digits_preset_clusters_well(digits) -> None:
    x, y = digits
    model, history = fit_gmvae(x, GMVAEConfig.for_digits(), verbose=0)
    out = model.predict_outputs(x)
    report = metrics.clustering_report(y, out[features.CLUSTER], 10)
    assert report["acc"] >= 0.7, report
    assert report["nmi"] >= 0.7, report
    assert report["empty"] == 0, report
    assert np.isfinite(history["loss"]).all()


def test_same_seed_same_result_with_augmentation() -> None:
    x = np.random.default_rng(0).random((200, 784)).astype("float32")
    config = GMVAEConfig.for_mnist(hidden_units=(16,), pretrain_epochs=1, epochs=1, gmm_n_init=1, batch_size=100)
    assert config.augmenting
    runs = [fit_gmvae(x, config, verbose=0) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][1]["pretrain_loss"], runs[1][1]["pretrain_loss"])
    np.testing.assert_array_equal(runs[0][1]["loss"], runs[1][1]["loss"])
    np.testing.assert_array_equal(
        runs[0][0].predict_outputs(x)[features.ELBO], runs[1][0].predict_outputs(x)[features.ELBO]
    )
