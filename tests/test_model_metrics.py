"""Clustering metrics on hand-made label permutations."""

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from model import metrics

LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])


def test_permuted_labels_are_perfect() -> None:
    clusters = np.array([2, 0, 1])[LABELS]  # relabelling only
    assert metrics.cluster_accuracy(LABELS, clusters) == 1.0
    assert metrics.nmi(LABELS, clusters) == pytest.approx(1.0)
    assert metrics.ari(LABELS, clusters) == pytest.approx(1.0)


def test_accuracy_hand_computed() -> None:
    clusters = np.array([5, 5, 7, 7, 7, 7, 9, 9, 9, 5])
    # best map: 5->0 (2 hits), 7->1 (3 hits), 9->2 (3 hits) = 8/10
    assert metrics.cluster_accuracy(LABELS, clusters) == pytest.approx(0.8)


def test_more_clusters_than_classes() -> None:
    clusters = np.array([0, 0, 3, 1, 1, 1, 2, 2, 2, 2])  # cluster 3 has no class left
    assert metrics.cluster_accuracy(LABELS, clusters) == pytest.approx(0.9)


def test_fewer_clusters_than_classes() -> None:
    clusters = np.zeros(10, dtype=int)
    assert metrics.cluster_accuracy(LABELS, clusters) == pytest.approx(0.4)
    assert metrics.nmi(LABELS, clusters) == pytest.approx(0.0)
    assert metrics.ari(LABELS, clusters) == pytest.approx(0.0)


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        metrics.cluster_accuracy(LABELS, LABELS[:3])


def test_occupancy_and_report() -> None:
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    occ = metrics.occupancy(clusters, 4)
    assert occ == {"min_share": 0.0, "min_share_vs_equal": 0.0, "max_share": 0.6, "empty": 2}
    assert metrics.occupancy(clusters, 2)["min_share_vs_equal"] == pytest.approx(0.8)
    latent = np.where(clusters[:, None] == 0, -5.0, 5.0) + np.random.default_rng(0).normal(size=(10, 2)) * 0.1
    report = metrics.clustering_report(LABELS, clusters, 4, latent)
    assert report["silhouette"] > 0.9
    assert set(report) == {"min_share", "min_share_vs_equal", "max_share", "empty", "acc", "nmi", "ari", "silhouette"}
    assert np.isnan(metrics.silhouette(latent, np.zeros(10, dtype=int)))


def test_silhouette_of_a_sample_with_one_cluster_is_nan_and_matches_scikit_learn_otherwise() -> None:
    """5,000 examples with a 2-example cluster: the 2,000-row sample often misses it (scikit-learn then raised)."""
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(5000, 3))
    clusters = np.zeros(5000, dtype=int)
    clusters[[0, 2]] = 1
    sampled = np.random.RandomState(0).permutation(5000)[:2000]
    assert not np.isin([0, 2], sampled).any(), "the sample of seed 0 misses the small cluster"
    assert np.isnan(metrics.silhouette(latent, clusters))
    clusters = rng.integers(0, 3, 5000)
    expected = silhouette_score(latent, clusters, sample_size=2000, random_state=0)
    assert metrics.silhouette(latent, clusters) == pytest.approx(expected, abs=1e-9)
