"""Does the deep model earn its cost? The candidate against two cheap baselines on the same eval examples.

The Trainer stores, beside the SavedModel, the training summary (`model.training_record`: K and why, the learned
mixture weights, stage seconds, two fitted baselines) and the pre-trained encoder. Here both
baselines cluster the eval split's model inputs (from the candidate's ``transform_features`` signature) and get
the candidate's metrics. Informational only: the bless rule does not read any of it.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from components.clustering_evaluator import scoring
from components.clustering_evaluator.constants import CANDIDATE
from model import baselines, features
from model.config import PRETRAIN, TOTAL_SECONDS
from model.metrics import ari, clustering_report
from model.training_record import TRAINING_SUMMARY_FILE, TrainingSummary, read_summary

METHODS = (CANDIDATE, baselines.GMM_INPUTS, baselines.AE_GMM)
TITLES = {CANDIDATE: "candidate (GMVAE)", **baselines.TITLES}
SPACES = {CANDIDATE: "latent means", baselines.GMM_INPUTS: "the inputs", baselines.AE_GMM: "pre-trained codes"}
AS_GOOD = 0.02  # NMI (or ARI agreement) margin within which a baseline "does as well"
AGREEMENT_ARI, TRAIN_SECONDS = "agreement_ari", "train_seconds"  # besides the metric names of model.features
ROWS = (*features.LABELLED_METRICS, features.SILHOUETTE, features.MIN_SHARE, features.MAX_SHARE, features.EMPTY,
        AGREEMENT_ARI, TRAIN_SECONDS)


def read_training_summary(model_uri: str) -> tuple[TrainingSummary | None, str | None]:
    """(the summary the Trainer wrote in the Model artifact, None) or (None, why there is none)."""
    try:
        return read_summary(model_uri), None
    except FileNotFoundError:
        return None, f"no {TRAINING_SUMMARY_FILE} in the model artifact (older model): no comparison"
    except ValueError as error:
        return None, f"{error}: no comparison"


def same_likelihood(candidate: TrainingSummary | None, baseline: TrainingSummary | None) -> bool:
    """False when both training summaries are known and their models' likelihoods differ
    (:meth:`TrainingSummary.likelihood`): their ELBOs are then on different scales and not comparable."""
    if not candidate or not baseline:
        return True
    try:
        return candidate.likelihood() == baseline.likelihood()
    except TypeError:  # a config field of the wrong kind: the scales cannot be shown equal
        return False


def pretrained_codes(model_uri: str, summary: TrainingSummary, x: np.ndarray) -> np.ndarray:
    """E[z|x] of the pre-trained encoder the Trainer saved (the GMVAE's autoencoder before fine-tuning)."""
    from model.training import build_model, latent_means  # imported here: builds Keras models

    model = build_model(summary.gmvae_config())
    source = os.path.join(model_uri, summary.pretrained_encoder)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, baselines.PRETRAINED_ENCODER_FILE)
        tf.io.gfile.copy(source, local)  # h5py reads local files only
        model.encoder.load_weights(local)
    return latent_means(model, np.asarray(x, dtype=np.float32))


def _metrics(labels, clusters: np.ndarray, k: int, space: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    metrics = clustering_report(labels, clusters, k, latent=space)
    metrics[AGREEMENT_ARI] = ari(candidate, clusters)
    return metrics


def verdict(methods: Mapping[str, Mapping[str, float]]) -> str:
    """One line: does the candidate beat both baselines, or does a cheaper one do as well (within `AS_GOOD` NMI) or
    better?"""
    cand, inputs, ae = (methods[m] for m in METHODS)
    nan = float("nan")
    cost = f"{inputs.get(TRAIN_SECONDS, nan):.1f} s instead of {cand.get(TRAIN_SECONDS, nan):.0f} s"
    if features.NMI in cand:
        c, i, a = (m[features.NMI] for m in (cand, inputs, ae))

        def does(nmi: float) -> str:
            return "does better" if nmi > c + AS_GOOD else "does as well"

        if i >= c - AS_GOOD:
            return f"a GMM on the inputs {does(i)} (NMI {i:.3f} vs {c:.3f}) in {cost} of training: consider it"
        if a >= c - AS_GOOD:
            return (f"AE + GMM on the same autoencoder {does(a)} (NMI {a:.3f} vs {c:.3f}): fine-tuning the mixture "
                    "adds little")
        return (f"the GMVAE beats both baselines by at least {c - max(i, a):.3f} NMI ({c:.3f} vs {a:.3f} "
                f"for AE + GMM and {i:.3f} for a GMM on the inputs)")
    i, a = inputs[AGREEMENT_ARI], ae[AGREEMENT_ARI]
    if i >= 1.0 - 5 * AS_GOOD:
        return (f"no labels; a GMM on the inputs finds nearly the same clusters (ARI {i:.2f} with the candidate) in "
                f"{cost} of training: consider it")
    return (f"no labels, so no accuracy: the baselines agree with the candidate at ARI {i:.2f} (GMM on the inputs) "
            f"and {a:.2f} (AE + GMM); silhouettes are each in the method's own space")


def compare(summary: TrainingSummary, model_uri: str, scores: Mapping[str, np.ndarray],
            candidate_metrics: Mapping[str, float], cluster_ids: Sequence[int]) -> dict[str, Any]:
    """The ``comparison`` section of metrics.json: K and why, mixture weights vs eval shares per cluster ID of the
    candidate (``cluster_ids[k]`` is the stable ID of its component k; retired IDs are not listed), and when the
    baselines and the model input are there, every method's metrics and the verdict. Informational, so a summary
    it cannot use gives a section with a ``note`` instead of stopping the evaluation."""
    try:
        return _compare(summary, model_uri, scores, candidate_metrics, cluster_ids)
    except (OSError, ValueError, KeyError, TypeError, IndexError, tf.errors.OpError) as error:
        return {"note": f"no comparison: the training summary could not be used ({type(error).__name__}: {error})"}


def _compare(summary: TrainingSummary, model_uri: str, scores: Mapping[str, np.ndarray],
             candidate_metrics: Mapping[str, float], cluster_ids: Sequence[int]) -> dict[str, Any]:
    k = summary.n_components
    clusters = scores[features.CLUSTER]
    ids = sorted(int(i) for i in cluster_ids)
    weights = dict(zip(cluster_ids, summary.mixture_weights, strict=True)) if summary.mixture_weights else None
    seconds = summary.seconds
    section: dict[str, Any] = {
        "k": k,
        "k_reason": summary.k_reason,
        "k_scores": dict(summary.k_scores),
        "init_method": summary.init_method,
        "cluster_ids": ids,
        "mixture_weights": [weights[i] for i in ids] if weights else None,
        "eval_shares": [float(np.mean(clusters == i)) if clusters.size else 0.0 for i in ids],
        "training_seconds": dict(seconds),
    }
    fitted = summary.baselines
    if not fitted or scoring.MODEL_INPUT not in scores:
        section["note"] = summary.baseline_error or "no baselines or no transform_features signature"
        return section
    labels = scores[scoring.LABEL] if bool(np.all(scores[scoring.HAS_LABEL])) else None
    x = scores[scoring.MODEL_INPUT]
    methods: dict[str, dict[str, float]] = {CANDIDATE: {**candidate_metrics, AGREEMENT_ARI: 1.0,
                                                        TRAIN_SECONDS: float(seconds.get(TOTAL_SECONDS, math.nan))}}
    inputs = fitted[baselines.GMM_INPUTS]
    methods[baselines.GMM_INPUTS] = _metrics(labels, baselines.predict(inputs, x), k,
                                             baselines.representation(inputs, x), clusters)
    methods[baselines.GMM_INPUTS][TRAIN_SECONDS] = float(inputs["fit_seconds"])
    ae = fitted[baselines.AE_GMM]
    codes = pretrained_codes(model_uri, summary, x)
    methods[baselines.AE_GMM] = _metrics(labels, baselines.predict(ae, codes), k, codes, clusters)
    methods[baselines.AE_GMM][TRAIN_SECONDS] = float(seconds.get(PRETRAIN, math.nan) + ae["fit_seconds"])
    section["methods"] = {name: {key: m.get(key) for key in ROWS if key in m} for name, m in methods.items()}
    section["silhouette_space"] = SPACES
    section["verdict"] = verdict(methods)
    return section


def _cell(value: Any, key: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if key in (features.MIN_SHARE, features.MAX_SHARE):
        return f"{100 * value:.1f}%"
    if key == features.EMPTY:
        return str(int(value))
    if key == TRAIN_SECONDS:
        return f"{value:.1f}"
    return f"{value:.3f}"


ROW_TITLES = {AGREEMENT_ARI: "agreement with the candidate (ARI)", TRAIN_SECONDS: "training seconds",
              features.SILHOUETTE: "silhouette (each in its own space)", features.MIN_SHARE: "smallest cluster",
              features.MAX_SHARE: "largest cluster", features.EMPTY: "empty clusters"}


def markdown(section: Mapping[str, Any] | None, note: str | None = None) -> list[str]:
    """Report lines: the comparison table and verdict, K and why, learned weights beside eval shares."""
    lines = ["## Is the deep model worth it? candidate vs GMM on the inputs vs AE + GMM (same autoencoder)", ""]
    if section is None or "k" not in section:
        return [*lines, f"- {(section or {}).get('note') or note or 'no training summary'}", ""]
    methods = section.get("methods")
    if methods:
        lines += [f"**{section['verdict']}**", "", "| metric | " + " | ".join(TITLES[m] for m in METHODS) + " |",
                  "|---|" + "---|" * len(METHODS)]
        for key in ROWS:
            if any(key in methods[m] for m in METHODS):
                cells = " | ".join(_cell(methods[m].get(key), key) for m in METHODS)
                lines.append(f"| {ROW_TITLES.get(key, key)} | {cells} |")
        lines += ["", "Same K and the same eval examples for all three. Silhouette: the candidate on its latent means, "
                  "the GMM on the inputs (PCA-50 when there are more than 50), AE + GMM on the pre-trained codes. "
                  "AE + GMM's seconds include the autoencoder pre-training. Informational: not part of the bless "
                  "rule.", ""]
    else:
        lines += [f"- no baseline comparison: {section.get('note')}", ""]
    lines += ["## K: how many clusters and why", "", f"K = {section['k']}: {section.get('k_reason')} "
              f"(mixture initialised by `{section.get('init_method')}`).", ""]
    scores = section.get("k_scores") or {}
    if scores:
        lines += ["| K | score |", "|---|---|", *(f"| {k} | {v:.4g} |" for k, v in scores.items()), ""]
    weights = section.get("mixture_weights") or []
    shares = section.get("eval_shares") or []
    lines += ["| cluster ID | learned mixture weight | share of eval examples |", "|---|---|---|"]
    for c, i in enumerate(section.get("cluster_ids") or []):
        w = f"{100 * weights[c]:.1f}%" if c < len(weights) else "n/a"
        s = f"{100 * shares[c]:.1f}%" if c < len(shares) else "n/a"
        lines.append(f"| {i} | {w} | {s} |")
    return [*lines, ""]
