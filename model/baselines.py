"""The two cheap baselines a GMVAE must beat, fitted at training time and applied at evaluation time.

- ``gmm_inputs``: a Gaussian mixture on the model inputs themselves (full covariance up to `MAX_FULL_FEATURES`
  features; above that PCA to `MAX_FULL_FEATURES` dimensions first and diagonal covariances);
- ``ae_gmm``: a full-covariance Gaussian mixture on the pre-trained autoencoder's codes E[z|x] (the same
  autoencoder the GMVAE starts from, before fine-tuning changes its encoder).

Both use the model's K. A fitted baseline is stored as plain JSON (weights, means, covariances and the PCA
projection when used), so that applying it needs no pickled scikit-learn object.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

GMM_INPUTS = "gmm_inputs"
AE_GMM = "ae_gmm"
TITLES = {GMM_INPUTS: "GMM on the inputs", AE_GMM: "AE + GMM (same autoencoder)"}
PRETRAINED_ENCODER_FILE = "pretrained_encoder.weights.h5"  # the encoder before fine-tuning (AE + GMM needs it)
MAX_FULL_FEATURES = 50
MAX_FIT_ROWS = 20000


# Covariance floors (times the data's mean variance) tried in turn when EM meets a degenerate component.
COVARIANCE_FLOORS = (1e-6, 1e-4, 1e-2, 1e-1)


class GMMFitError(ValueError):
    """No covariance floor let a Gaussian mixture be fitted; ``cause`` is the last error's first line."""

    def __init__(self, k: int, cause: str) -> None:
        super().__init__(f"a {k}-component GMM could not be fitted: {cause}")
        self.cause = cause


def fit_gmm(
    x: np.ndarray, k: int, covariance: str, seed: int, n_init: int, floors: tuple[float, ...] = COVARIANCE_FLOORS
) -> GaussianMixture:
    """A k-component GMM on x [N, d] (best of ``n_init`` starts); when EM meets a degenerate component the next
    of ``floors`` is tried, and `GMMFitError` is raised when none works."""
    scale = float(np.mean(np.var(x, axis=0))) or 1.0
    cause = "no covariance floor to try"
    for floor in floors:
        try:
            return GaussianMixture(
                k, covariance_type=covariance, n_init=max(n_init, 1), reg_covar=floor * scale, random_state=seed
            ).fit(x)
        except (ValueError, np.linalg.LinAlgError) as err:
            cause = str(err).splitlines()[0]
    raise GMMFitError(k, cause)


def fit_baseline(x: np.ndarray, k: int, seed: int = 0, n_init: int = 2, reduce: bool = True) -> dict[str, Any]:
    """Fit a K-component GMM on the rows of x [N, F]: the JSON-ready parameters, plus the fit seconds.

    With ``reduce`` and more than `MAX_FULL_FEATURES` columns, PCA first and diagonal covariances.
    """
    start = time.perf_counter()
    x = np.asarray(x, dtype=np.float64)
    pca = None
    if reduce and x.shape[1] > MAX_FULL_FEATURES:
        pca = PCA(MAX_FULL_FEATURES, random_state=seed).fit(x)
        x = pca.transform(x)
    covariance = "diag" if pca is not None else "full"
    gmm = fit_gmm(x, k, covariance, seed, n_init)
    params: dict[str, Any] = {
        "n_components": int(k),
        "covariance_type": covariance,
        "weights": gmm.weights_.tolist(),
        "means": gmm.means_.tolist(),
        "covariances": gmm.covariances_.tolist(),
        "n_fit_rows": int(len(x)),
    }
    if pca is not None:
        params["pca"] = {"mean": pca.mean_.tolist(), "components": pca.components_.tolist()}
    params["fit_seconds"] = time.perf_counter() - start
    return params


def gmm_from_params(params: dict[str, Any]) -> GaussianMixture:
    """A GaussianMixture that predicts like the fitted one, rebuilt from `fit_baseline`'s parameters."""
    gmm = GaussianMixture(int(params["n_components"]), covariance_type=params["covariance_type"])
    gmm.weights_ = np.asarray(params["weights"], dtype=np.float64)
    gmm.means_ = np.asarray(params["means"], dtype=np.float64)
    gmm.covariances_ = np.asarray(params["covariances"], dtype=np.float64)
    gmm.precisions_cholesky_ = _compute_precision_cholesky(gmm.covariances_, gmm.covariance_type)
    return gmm


def representation(params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The space the baseline's GMM lives in: x itself, or its PCA projection."""
    x = np.asarray(x, dtype=np.float64)
    pca = params.get("pca")
    if pca is None:
        return x
    return (x - np.asarray(pca["mean"])) @ np.asarray(pca["components"]).T


def predict(params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The cluster of every row of x [N, F] under a baseline stored by `fit_baseline`."""
    return gmm_from_params(params).predict(representation(params, x))
