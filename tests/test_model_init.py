"""Stage 2 (mixture initialisation) and the numeric guards: unequal sizes, K chosen from the data, data too small."""

import re

import numpy as np
import pytest
import tensorflow as tf

from model import training
from model.baselines import GMMFitError, fit_gmm
from model.config import GMVAEConfig
from model.gmvae import GMVAE, _softplus_inverse
from model.metrics import cluster_accuracy
from model.training import (
    STABILITY_RUNS,
    InitialisationError,
    _gmm,
    choose_partition,
    initial_mixture,
    merge_by_entropy,
)


def blobs(sizes: list[int], dim: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs of the given sizes: codes [N, dim] and their blob ids."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=8.0, size=(len(sizes), dim))
    z = np.concatenate([c + rng.normal(size=(n, dim)) for c, n in zip(centres, sizes, strict=True)])
    return z, np.repeat(np.arange(len(sizes)), sizes)


@pytest.mark.parametrize("method", ["gmm", "umap"])
def test_initial_weights_follow_unequal_cluster_sizes(method: str) -> None:
    sizes = [600, 300, 60, 40]
    z, _ = blobs(sizes)
    decision, (weights, means, variances), labels = initial_mixture(
        z, GMVAEConfig(input_dim=8, latent_dim=4, n_components=4, init_method=method))
    assert decision.n_components == 4 and decision.reason.startswith("K=4 was given; clusters from a GMM")
    np.testing.assert_allclose(np.sort(weights), np.sort(np.array(sizes) / sum(sizes)), atol=0.01)
    assert means.shape == variances.shape == (4, 4) and np.all(variances > 0)
    assert labels.shape == (len(z),)


@pytest.mark.parametrize("method", ["gmm", "umap"])
def test_auto_k_finds_the_number_of_blobs_and_says_why(method: str) -> None:
    z, _ = blobs([300, 200, 150, 100, 50])
    decision, (weights, _, _), _ = initial_mixture(
        z, GMVAEConfig(input_dim=8, latent_dim=4, n_components=None, init_method=method))
    assert decision.n_components == 5, decision
    assert len(weights) == 5 and set(decision.scores) == set(range(2, 16))
    assert decision.reason.startswith("K=5 is the best of K=2..15 by the ")


def test_too_few_rows_for_k_is_one_sentence() -> None:
    z, _ = blobs([10, 10])
    with pytest.raises(InitialisationError, match=r"^20 rows are too few for 10 clusters .* ask for at most 4 "
                                                  r"clusters or bring more data\.$"):
        initial_mixture(z, GMVAEConfig(input_dim=8, latent_dim=4, n_components=10, init_method="gmm"))
    with pytest.raises(InitialisationError, match="too few to choose the number of clusters"):
        initial_mixture(z[:8], GMVAEConfig(input_dim=8, latent_dim=4, n_components=None, init_method="gmm"))


def test_repeated_rows_do_not_crash_the_initialisation() -> None:
    z = np.repeat(np.eye(3, 4), 20, axis=0)  # 3 distinct codes asked for 5 clusters
    decision, (weights, _, variances), _ = initial_mixture(
        z, GMVAEConfig(input_dim=8, latent_dim=4, n_components=5, init_method="gmm"))
    assert decision.n_components == 5 and np.all(np.isfinite(variances)) and np.isclose(weights.sum(), 1)


def test_softplus_inverse_does_not_overflow() -> None:
    values = _softplus_inverse(np.array([1e-9, 1.0, 50.0, 1e6]))
    assert np.all(np.isfinite(values))
    np.testing.assert_allclose(tf.nn.softplus(values).numpy()[1:], [1.0, 50.0, 1e6], rtol=1e-5)


def test_huge_variances_set_a_finite_mixture() -> None:
    model = GMVAE(GMVAEConfig(input_dim=4, latent_dim=2, n_components=2, hidden_units=(8,), likelihood="gaussian"))
    model(tf.zeros([1, 4]))
    model.prior.set_mixture(np.array([0.5, 0.5]), np.zeros((2, 2)), np.full((2, 2), 1e12))
    assert np.all(np.isfinite(model.prior.scale.numpy()))
    with pytest.raises(ValueError, match="non-finite"):
        model.prior.set_mixture(np.array([0.5, 0.5]), np.full((2, 2), np.nan), np.ones((2, 2)))


def test_balance_term_pulls_toward_the_learned_weights_not_uniform() -> None:
    config = GMVAEConfig(input_dim=4, latent_dim=2, n_components=2, hidden_units=(8,), likelihood="gaussian",
                         self_training_weight=0.0, balance_weight=1.0, min_scale=0.5)
    model = GMVAE(config)
    x = tf.random.stateless_normal([400, 4], seed=[1, 2])
    model(x)
    codes = model.encode(x).loc.numpy()
    far = codes[:, 0] > np.quantile(codes[:, 0], 0.8)  # 20% of the codes on one side
    model.prior.set_mixture(np.array([0.8, 0.2]), np.stack([codes[~far].mean(0), codes[far].mean(0)]),
                            np.full((2, 2), 0.01))
    tf.random.set_seed(0)
    matched = float(model.loss_terms(x)[1]["balance"])
    model.prior.logits.assign(np.zeros(2, np.float32))  # uniform weights: the same 80/20 shares are now penalised
    tf.random.set_seed(0)
    uniform = float(model.loss_terms(x)[1]["balance"])
    assert matched < 0.02, "posterior shares near 80/20 match learned weights 80/20: (almost) no penalty"
    assert uniform > matched + 0.03


def test_too_few_rows_stop_before_any_training() -> None:
    from model.training import fit_gmvae

    config = GMVAEConfig(input_dim=4, latent_dim=2, n_components=10, hidden_units=(8,), likelihood="gaussian",
                         image_shape=None, pretrain_epochs=10**6)  # would take forever if training started
    with pytest.raises(InitialisationError, match=r"^30 rows are too few for 10 clusters"):
        fit_gmvae(np.zeros((30, 4), np.float32), config, verbose=0)


def test_merge_by_entropy_joins_the_components_that_share_rows() -> None:
    rng = np.random.default_rng(0)
    shared = rng.uniform(0.3, 0.7, 200)  # components 0 and 1 split the same 200 rows
    posterior = np.zeros((300, 4))
    posterior[:200, 0], posterior[:200, 1] = shared, 1 - shared
    posterior[200:250, 2] = 1.0
    posterior[250:, 3] = 1.0
    labels = merge_by_entropy(posterior, 3)
    assert len(set(labels[:200])) == 1 and len(set(labels)) == 3
    with pytest.raises(ValueError, match="cannot merge 4 components into 5 clusters"):
        merge_by_entropy(posterior, 5)


def test_choose_partition_keeps_the_gmm_on_separated_blobs() -> None:
    z, truth = blobs([200, 200, 200])
    labels, why = choose_partition([z] * STABILITY_RUNS, 3, GMVAEConfig(input_dim=8, latent_dim=4, n_components=3))
    assert cluster_accuracy(truth, labels) == 1.0
    assert why.startswith("clusters from a GMM with 3 components (stability 1.000")


def test_choose_partition_prefers_a_stabler_merge_when_groups_differ_in_size() -> None:
    # two big rings (no Gaussian shape) and two small nearby blobs: a 4-component GMM cuts the rings and joins the
    # blobs; an over-clustering merged by entropy keeps each ring and each blob whole more often
    rng = np.random.default_rng(0)

    def ring(x: float, n: int) -> np.ndarray:
        angle, radius = rng.uniform(0, 2 * np.pi, n), rng.normal(6, 0.4, n)
        return np.c_[x + radius * np.cos(angle), radius * np.sin(angle)]

    z = np.concatenate([ring(0, 1500), ring(20, 1500), rng.normal((10, 15), 0.5, (60, 2)),
                        rng.normal((13, 15), 0.5, (60, 2))])
    truth = np.repeat([0, 1, 2, 3], [1500, 1500, 60, 60])
    config = GMVAEConfig(input_dim=8, latent_dim=2, n_components=4, seed=0)
    labels, why = choose_partition([z] * STABILITY_RUNS, 4, config)
    assert "merged to 4 by entropy" in why and "against" in why
    assert cluster_accuracy(truth, labels) > cluster_accuracy(truth, _gmm(z, 4, "full", 10, 0).predict(z)) + 0.2


MERGED = "a GMM with 8 components merged to 4 by entropy"


def cut_by_a_k_gmm(sizes: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Four 2-d blobs of ``sizes``: the codes, their blob ids, how a 4-component GMM cuts them when sizes differ
    (the first blob halved, the last one joined to the third) and three near-identical views (one per run)."""
    z, truth = blobs(sizes, dim=2)
    cut = truth.copy()
    cut[: sizes[0] // 2], cut[truth == 3] = 3, 2
    return z, truth, cut, [z, z + 1e-3, z + 2e-3]


def test_choose_partition_counts_the_embeddings_randomness_in_stability(monkeypatch) -> None:
    # a merge that separates the first view better is kept only if it comes out the same on the other views
    # (UMAP embeddings with other seeds): on small data a tight group torn apart by one embedding is not
    _, truth, cut, views = cut_by_a_k_gmm([60, 25, 15, 10])

    def fake(view: np.ndarray, k: int, cfg: GMVAEConfig, seed: int) -> dict[str, np.ndarray]:
        torn = truth if view is views[0] else np.roll(truth, 7 * seed)
        return {"a GMM with 4 components": cut, MERGED: torn}

    monkeypatch.setattr(training, "_partitions", fake)
    config = GMVAEConfig(input_dim=8, latent_dim=2, n_components=4)
    labels, why = choose_partition(views, 4, config)
    np.testing.assert_array_equal(labels, cut)
    assert why.startswith("clusters from a GMM with 4 components (stability 1.000")
    monkeypatch.setattr(training, "_partitions", lambda view, k, cfg, seed: {
        "a GMM with 4 components": cut if seed else np.roll(cut, 5), MERGED: truth})
    labels, why = choose_partition(views, 4, config)
    np.testing.assert_array_equal(labels, truth)
    assert f"{MERGED} (stability 1.000" in why


def test_choose_partition_weighs_a_clearly_better_separation_above_a_slightly_lower_stability(monkeypatch) -> None:
    # the K-GMM cuts the big group and joins the two small ones the same way on every run; the merge finds the four
    # groups but one run moves three rows: a hair less stable, far better separated, so it wins
    _, truth, cut, views = cut_by_a_k_gmm([150, 100, 20, 15])
    moved = truth.copy()
    moved[:3] = 1
    monkeypatch.setattr(training, "_partitions", lambda view, k, cfg, seed: {
        "a GMM with 4 components": cut, MERGED: moved if view is views[2] else truth})
    labels, why = choose_partition(views, 4, GMVAEConfig(input_dim=4, latent_dim=2, n_components=4))
    np.testing.assert_array_equal(labels, truth)
    assert why.startswith(f"clusters from {MERGED} (stability 0.9") and "against 1.000" in why


def test_choose_partition_keeps_the_gmm_over_a_stabler_but_less_separated_merge(monkeypatch) -> None:
    # the merge makes the same wrong cut on every run (stability 1, far lower separation); the K-GMM finds the four
    # groups on two runs and scrambles 30% of the rows on the third: the sum of the two measures favours the merge,
    # but a merge that separates clearly worse than the K-GMM must not win on stability alone
    _, truth, cut, views = cut_by_a_k_gmm([150, 100, 20, 15])
    rng = np.random.default_rng(1)
    scrambled = truth.copy()
    rows = rng.choice(len(truth), int(0.3 * len(truth)), replace=False)
    scrambled[rows] = rng.integers(0, 4, len(rows))
    monkeypatch.setattr(training, "_partitions", lambda view, k, cfg, seed: {
        "a GMM with 4 components": scrambled if view is views[2] else truth, MERGED: cut})
    labels, why = choose_partition(views, 4, GMVAEConfig(input_dim=4, latent_dim=2, n_components=4))
    np.testing.assert_array_equal(labels, truth)
    assert why.startswith("clusters from a GMM with 4 components (stability 0.6")
    assert f"{MERGED} left out: stability 1.000, silhouette 0.19" in why and "more than 0.01 below the GMM" in why


def four_groups_and_a_merge() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four groups of 100 rows (the last two 5 apart, the rest 12), 12 rows of the first moved 3.5 aside: the codes,
    the groups, and a merge that joins the last two groups and keeps the 12 rows apart instead."""
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [12, 0], [0, 12], [5, 12]], float)
    z = np.concatenate([c + rng.normal(size=(100, 2)) for c in centres])
    z[:12] -= [3.5, 0]
    truth = np.repeat(np.arange(4), 100)
    merged = np.where(truth == 3, 2, truth)
    merged[:12] = 3
    return z, truth, merged


def test_choose_partition_takes_a_stabler_merge_that_keeps_a_small_group_apart(monkeypatch) -> None:
    # the merge joins two groups to keep 12 rows of a third apart; it is a little better separated overall and
    # stabler (the K-GMM moves 5% of the rows on one run), so it wins; before row 45 a gate left it out because the
    # 12 rows lie closer to their group than the two joined groups to each other
    z, truth, merged = four_groups_and_a_merge()
    moved = truth.copy()
    rows = np.random.default_rng(1).choice(len(truth), 20, replace=False)
    moved[rows] = (moved[rows] + 1) % 4
    views = [z, z + 1e-3, z + 2e-3]
    monkeypatch.setattr(training, "_partitions", lambda view, k, cfg, seed: {
        "a GMM with 4 components": moved if view is views[2] else truth, MERGED: merged})
    labels, why = choose_partition(views, 4, GMVAEConfig(input_dim=4, latent_dim=2, n_components=4))
    np.testing.assert_array_equal(labels, merged)
    assert why.startswith(f"clusters from {MERGED} (stability 1.000")


@pytest.mark.parametrize("merge_silhouette, wins", [(0.595, True), (0.585, False)])
def test_choose_partition_gives_a_near_tie_to_the_candidate_with_more_components(monkeypatch, merge_silhouette: float,
                                                                                 wins: bool) -> None:
    # both candidates make the same cut on every run (stability 1); the K-GMM joins the two small groups, the merge
    # keeps them apart. Scored 0.005 lower, the merge ties and wins it (row 47); 0.015 lower, it does not
    _, truth, cut, views = cut_by_a_k_gmm([150, 100, 20, 15])
    monkeypatch.setattr(training, "_partitions", lambda view, k, cfg, seed: {
        "a GMM with 4 components": cut, MERGED: truth})
    monkeypatch.setattr(training, "_silhouette", lambda r, labels: 0.6 if np.array_equal(labels, cut)
                        else merge_silhouette)
    labels, why = choose_partition(views, 4, GMVAEConfig(input_dim=4, latent_dim=2, n_components=4))
    np.testing.assert_array_equal(labels, truth if wins else cut)
    if wins:
        assert why.startswith(f"clusters from {MERGED} (stability 1.000, silhouette 0.595")
        assert "within 0.01 of the best score (1.595 against 1.600 for a GMM with 4 components)" in why
    else:
        assert why.startswith("clusters from a GMM with 4 components (stability 1.000, silhouette 0.600)")


def test_choose_partition_takes_the_run_that_agrees_with_the_others(monkeypatch) -> None:
    # the first embedding tears a group that the other two runs keep whole: their clusters are used, not its own
    z, truth = blobs([60, 40, 30], dim=2)
    torn = np.where(np.arange(130) < 20, 2, truth)
    views = [z, z + 1e-3, z + 2e-3]
    monkeypatch.setattr(training, "_partitions", lambda view, k, cfg, seed: {
        "a GMM with 3 components": torn if view is views[0] else truth})
    labels, why = choose_partition(views, 3, GMVAEConfig(input_dim=4, latent_dim=2, n_components=3))
    np.testing.assert_array_equal(labels, truth)
    assert why.startswith("clusters from a GMM with 3 components (stability ")


def test_choose_partition_takes_the_inputs_clusters_when_they_are_at_least_as_stable(monkeypatch) -> None:
    # an embedding that tears a tight group in two (as UMAP can on 150 rows) loses to the inputs' own GMM, which
    # finds the three groups on every seed
    x, truth = blobs([50, 50, 50])
    torn = np.where(np.arange(150) < 25, 1, truth)
    monkeypatch.setattr(training, "_partitions", lambda view, k, cfg, seed: {"a GMM with 3 components": torn})
    config = GMVAEConfig(input_dim=4, latent_dim=2, n_components=3)
    labels, why = choose_partition([x[:, :2]] * STABILITY_RUNS, 3, config, inputs=x)
    assert cluster_accuracy(truth, labels) == 1.0
    assert why.startswith("clusters from a GMM with 3 components on the model inputs (stability 1.000")
    # without the inputs, or with too few rows per input feature to fit a full covariance, the codes decide
    wide = np.c_[x, np.random.default_rng(1).normal(size=(150, 30))]
    for inputs in (None, wide):
        labels, why = choose_partition([x[:, :2]] * STABILITY_RUNS, 3, config, inputs=inputs)
        np.testing.assert_array_equal(labels, torn)
        assert "model inputs" not in why


def test_choose_partition_keeps_the_codes_clusters_when_the_inputs_gmm_is_less_stable() -> None:
    z, truth = blobs([100, 100, 100])
    noise = np.random.default_rng(2).normal(size=(300, 3))  # no groups: every GMM seed cuts it elsewhere
    labels, why = choose_partition([z] * STABILITY_RUNS, 3, GMVAEConfig(input_dim=3, latent_dim=4, n_components=3),
                                   inputs=noise)
    assert cluster_accuracy(truth, labels) == 1.0
    assert why.startswith("clusters from a GMM with 3 components (stability 1.000")
    # the reason says that the inputs' GMM was tried and how stable it was, so a report shows why it lost
    assert re.search(r"; a GMM with 3 components on the model inputs left out: stability -?\d\.\d{3}, below the "
                     r"1\.000 of a GMM with 3 components\)$", why), why


def test_the_inputs_candidate_is_skipped_when_wide_or_unfittable(monkeypatch) -> None:
    config = GMVAEConfig(input_dim=60, latent_dim=4, n_components=2)
    wide, _ = blobs([400, 400], dim=60)  # enough rows (800 >= 2 x 60 x 2) but more than 50 features
    assert training._input_partition(wide, 2, config) is None
    x, _ = blobs([100, 100])
    flags = np.c_[x, np.random.default_rng(3).random(200) < 0.1]  # a missing-value indicator: 0/1 only
    assert training._input_partition(x, 2, config) is not None
    assert training._input_partition(flags, 2, config) is None
    constant = np.c_[x, np.full(200, 4.0)]  # a column with one value everywhere is left out, not a 0/1 pattern
    np.testing.assert_array_equal(training._input_partition(constant, 2, config)[0],
                                  training._input_partition(x, 2, config)[0])

    def fail(*args, **kwargs):
        raise InitialisationError("no fit")

    monkeypatch.setattr(training, "_gmm", fail)
    assert training._input_partition(x, 2, config) is None


def test_the_inputs_candidate_takes_the_seed_that_agrees_with_the_others(monkeypatch) -> None:
    # the first seed's GMM moves 20 rows; the other two agree, so theirs are the clusters, with their stability
    x, truth = blobs([50, 50, 50])
    odd = np.where(np.arange(150) < 20, 2, truth)
    config = GMVAEConfig(input_dim=4, latent_dim=2, n_components=3, seed=0)

    class Fitted:
        def __init__(self, seed: int) -> None:
            self.labels = odd if seed == config.seed else truth

        def predict(self, rows: np.ndarray) -> np.ndarray:
            return self.labels

    monkeypatch.setattr(training, "_gmm", lambda z, k, covariance, n_init, seed: Fitted(seed))
    labels, stability = training._input_partition(x, 3, config)
    np.testing.assert_array_equal(labels, truth)
    assert 0.0 < stability < 1.0


def test_stage_two_passes_the_models_inputs_to_the_choice() -> None:
    x, truth = blobs([60, 60, 60])
    config = GMVAEConfig(input_dim=4, latent_dim=2, n_components=3, hidden_units=(8,), likelihood="gaussian",
                         init_method="gmm")
    decision, _, labels = training._cluster_codes(GMVAE(config), training.as_training_data(x), config)
    assert "clusters from a GMM with 3 components on the model inputs" in decision.reason
    assert cluster_accuracy(truth, labels.labels) == 1.0


def test_one_gmm_fit_serves_baselines_and_stage_two() -> None:
    # 3 rows cannot hold 5 components at any covariance floor: the baselines get a GMMFitError naming the cause,
    # stage 2 turns it into one sentence saying what to change
    x = np.arange(6, dtype=np.float64).reshape(3, 2)
    with pytest.raises(GMMFitError, match=r"^a 5-component GMM could not be fitted: ") as caught:
        fit_gmm(x, 5, "full", seed=0, n_init=1)
    assert "\n" not in str(caught.value)
    with pytest.raises(InitialisationError, match=r"^fitting 5 Gaussian components to the latent codes failed .* "
                                                  r"lower the number of clusters"):
        _gmm(x, 5, "full", 1, 0)
    # rows repeated many times (EM fails on them without a covariance floor) fit
    repeated = np.repeat(np.eye(3), 40, axis=0)
    assert len(set(fit_gmm(repeated, 3, "full", seed=0, n_init=1).predict(repeated))) == 3
