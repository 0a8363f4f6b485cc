"""Clustering metrics: Hungarian-matched accuracy and share error, NMI, ARI, silhouette, cluster occupancy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from model.features import ACC, ARI, EMPTY, MAX_SHARE, MIN_SHARE, MIN_SHARE_VS_EQUAL, NMI, SILHOUETTE


def cluster_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Unsupervised accuracy: the best one-to-one map of clusters to classes (Hungarian).

    Works when the number of clusters differs from the number of classes: clusters left
    without a class (or classes without a cluster) count as errors.
    """
    labels = np.asarray(labels).ravel()
    clusters = np.asarray(clusters).ravel()
    if labels.shape != clusters.shape:
        raise ValueError(f"labels and clusters differ in length: {labels.shape} vs {clusters.shape}")
    if labels.size == 0:
        raise ValueError("empty input")
    counts = _contingency(labels, clusters)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / labels.size)


def _contingency(labels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Counts [clusters, classes] of examples per (cluster, class)."""
    _, label_idx = np.unique(labels, return_inverse=True)
    _, cluster_idx = np.unique(clusters, return_inverse=True)
    counts = np.zeros((cluster_idx.max() + 1, label_idx.max() + 1), dtype=np.int64)
    np.add.at(counts, (cluster_idx, label_idx), 1)
    return counts


def share_error(labels: np.ndarray, clusters: np.ndarray) -> float:
    """The largest |class share - share of its Hungarian-matched cluster| over classes (0 = sizes recovered).

    A class left without a cluster counts with its whole share.
    """
    labels, clusters = np.asarray(labels).ravel(), np.asarray(clusters).ravel()
    counts = _contingency(labels, clusters)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    class_share = counts.sum(0) / labels.size
    matched = np.zeros_like(class_share)
    matched[cols] = counts.sum(1)[rows] / labels.size
    return float(np.max(np.abs(class_share - matched)))


def nmi(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean normalisation)."""
    return float(normalized_mutual_info_score(labels, clusters))


def ari(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Adjusted Rand index."""
    return float(adjusted_rand_score(labels, clusters))


def silhouette(latent: np.ndarray, clusters: np.ndarray, sample_size: int = 2000, seed: int = 0) -> float:
    """Silhouette of the clusters in latent space, on a random sample of at most ``sample_size`` rows for speed (the
    rows scikit-learn's ``sample_size`` would take, so the same rows for any latent space of the same examples); NaN
    if the sample holds < 2 clusters."""
    rows = np.random.RandomState(seed).permutation(len(clusters))[:sample_size]
    sampled = np.asarray(clusters)[rows]
    if len(np.unique(sampled)) < 2:
        return float("nan")
    return float(silhouette_score(np.asarray(latent)[rows], sampled))


def silhouette_in_spaces(latents: Sequence[np.ndarray], clusters: np.ndarray) -> float:
    """The mean silhouette of the clusters [N] over several representations [N, d_i] of the same examples (the same
    sample of rows in each), so that two partitions can be compared in the same spaces; NaN if < 2 clusters."""
    return float(np.mean([silhouette(latent, clusters) for latent in latents]))


def occupancy(clusters: np.ndarray, n_clusters: int) -> dict[str, float]:
    """Share of the smallest and largest cluster, the smallest share over an equal share (min share x n_clusters:
    1 when all are equal, so one floor means the same for 3 clusters and for 50) and the number of empty clusters
    among n_clusters."""
    counts = np.bincount(np.asarray(clusters).ravel(), minlength=n_clusters)
    total = max(int(counts.sum()), 1)
    share = counts / total
    return {
        MIN_SHARE: float(share.min()),
        MIN_SHARE_VS_EQUAL: float(counts.min() * len(counts) / total),  # one rounding: 1 of 70 at K=7 -> 0.1
        MAX_SHARE: float(share.max()),
        EMPTY: int((counts == 0).sum()),
    }


def clustering_report(
    labels: np.ndarray | None, clusters: np.ndarray, n_clusters: int, latent: np.ndarray | None = None
) -> dict[str, float]:
    """All metrics at once; supervised ones only when labels are given."""
    report: dict[str, float] = dict(occupancy(clusters, n_clusters))
    if labels is not None:
        report.update({ACC: cluster_accuracy(labels, clusters), NMI: nmi(labels, clusters),
                       ARI: ari(labels, clusters)})
    if latent is not None:
        report[SILHOUETTE] = silhouette(latent, clusters)
    return report
