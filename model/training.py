"""The GMVAE training recipe: AE pre-training, GMM initialisation of the prior, fine-tuning."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture

from model.baselines import COVARIANCE_FLOORS, MAX_FULL_FEATURES, GMMFitError, fit_gmm
from model.config import FINE_TUNE, INIT, MIN_ROWS_PER_CLUSTER, PRETRAIN, GMVAEConfig, seconds_key
from model.data import SampleLabels, TrainingData, as_training_data, sample_of, sample_rows
from model.distribute import from_chief, is_chief, n_workers, write_dir
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
    model: GMVAE,
    x: np.ndarray | TrainingData,
    strategy: tf.distribute.Strategy,
    verbose: int = 1,
    checkpoint_dir: str | None = None,
) -> dict[str, list]:
    """Stage 1: train encoder mean + decoder as an autoencoder (augmented input if configured)."""
    cfg = model.config
    if cfg.pretrain_epochs <= 0:
        return {}
    with strategy.scope():
        model.pretraining = True
        model.compile(keras.optimizers.Adam(cfg.pretrain_learning_rate))
    progress, keras_verbose = _progress(verbose, PRETRAIN)
    hist = model.fit(
        **as_training_data(x).fit_inputs(cfg.batch_size, cfg.seed),
        epochs=cfg.pretrain_epochs,
        verbose=keras_verbose,
        callbacks=[*_backup(checkpoint_dir, PRETRAIN), keras.callbacks.TerminateOnNaN(), *progress],
    )
    model.pretraining = False
    return _finite_history({"pretrain_" + k: v for k, v in hist.history.items()}, "pre-training")


class InitialisationError(ValueError):
    """The mixture could not be initialised from the data; the message says what to change."""


# A two-valued column is modelled as Bernoulli (`binary_columns`) when its rarer value is in this share of the rows.
MIN_BINARY_SHARE = 0.01


@dataclasses.dataclass(frozen=True)
class MixtureInit:
    """What stage 2 decided: the clusters of the initialisation sample and how K was chosen."""

    n_components: int
    method: str
    scores: dict[int, float]  # K -> the score that chose K ({} when K was given)
    reason: str


def check_rows_for_clusters(rows: int, k: int | None) -> None:
    """`InitialisationError` when ``rows`` cannot hold ``k`` clusters (None: K is chosen later, within the rows)."""
    if k is not None and k * MIN_ROWS_PER_CLUSTER > rows:
        raise InitialisationError(
            f"{rows} rows are too few for {k} clusters (at least {MIN_ROWS_PER_CLUSTER} rows per cluster are "
            f"needed): ask for at most {max(1, rows // MIN_ROWS_PER_CLUSTER)} clusters or bring more data."
        )


def _gmm(z: np.ndarray, k: int, covariance: str, n_init: int, seed: int) -> GaussianMixture:
    """`baselines.fit_gmm` on z from a floor of 1e-4; `InitialisationError` saying what to change when it fails."""
    try:
        return fit_gmm(z, k, covariance, seed, n_init, floors=COVARIANCE_FLOORS[1:])
    except GMMFitError as err:
        raise InitialisationError(
            f"fitting {k} Gaussian components to the latent codes failed ({err.cause}); the data may have fewer "
            "distinct rows than clusters: lower the number of clusters or check for repeated rows."
        ) from err


def _embedding(z: np.ndarray, seed: int, n_dims: int) -> np.ndarray:
    """UMAP embedding of the codes (their k-nearest-neighbour graph), in which clusters become compact."""
    import umap  # imported here: numba compiles on first import, only this init method needs it

    reducer = umap.UMAP(
        n_components=n_dims,
        n_neighbors=int(min(np.clip(len(z) // 100, 10, 30), len(z) - 1)),
        min_dist=0.0,
        random_state=seed,
        init="spectral",
    )
    return reducer.fit_transform(z).astype(np.float64)


def choose_n_components(
    r: np.ndarray, low: int, high: int, method: str, seed: int
) -> tuple[int, dict[int, float], str]:
    """The K in [low, high] that fits the representation r best: (K, score per K, what the score is).

    Codes (``gmm``): the lowest BIC of a diagonal GMM. A UMAP embedding (``umap``): the highest silhouette of the
    GMM's clusters (at most 3,000 points), because BIC keeps falling with K there: UMAP packs each class into
    tight, internally structured groups, which extra components always fit better.
    """
    if method == "gmm":
        scores = {k: float(_gmm(r, k, "diag", 2, seed).bic(r)) for k in range(low, high + 1)}
        return min(scores, key=scores.get), scores, "BIC of a diagonal GMM on the latent codes (lower is better)"
    sample = sample_of(r, 3000, seed)
    scores = {}
    for k in range(max(low, 2), high + 1):
        labels = _gmm(r, k, "full", 2, seed).predict(sample)
        scores[k] = _silhouette(sample, labels)
    return max(scores, key=scores.get), scores, "silhouette of GMM clusters on the UMAP embedding (higher is better)"


# Besides K components, GMMs with K times these many components are merged back to K clusters (stage 2).
OVERCLUSTER_FACTORS = (2, 3, 4)
# Each clustering of stage 2 (embedding and GMMs) is repeated with this many seeds to measure how stable it is.
STABILITY_RUNS = 3
# A merge competes with the K-component GMM only when its separation is at most this much below the GMM's: more
# stable merges that joined groups the K-GMM keeps apart are less separated (bench/RESULTS.md rows 33-34).
MERGE_SEPARATION_SLACK = 0.01
# Candidates whose scores lie this close to the best are a tie; the one fitted with the most components wins it, since
# a finer over-clustering keeps small groups apart that a coarser one joins (bench/RESULTS.md row 47).
SCORE_TIE = 0.01


def merge_by_entropy(posterior: np.ndarray, k: int) -> np.ndarray:
    """Merge the M components of a GMM's responsibilities ``posterior`` [N, M] into k clusters; every row's
    cluster [N] in 0..k-1.

    Pairs are merged one at a time, each time the pair whose union lowers the entropy of the assignment most, i.e.
    the two components that share the most rows (Baudry et al. 2010, "Combining mixture components for
    clustering"). Components tiling one compact group of any size merge; separated groups, even small, stay apart.
    """
    t = np.asarray(posterior, dtype=np.float64)
    if not 1 <= k <= t.shape[1]:
        raise ValueError(f"cannot merge {t.shape[1]} components into {k} clusters")

    def xlogx(a: np.ndarray) -> np.ndarray:
        return a * np.log(np.where(a > 0, a, 1.0))

    while t.shape[1] > k:
        plogp = xlogx(t)
        best, pair = -np.inf, (0, 1)
        for a in range(t.shape[1] - 1):
            gain = (xlogx(t[:, a:a + 1] + t[:, a + 1:]) - plogp[:, a:a + 1] - plogp[:, a + 1:]).sum(0)
            b = int(np.argmax(gain))
            if gain[b] > best:
                best, pair = float(gain[b]), (a, a + 1 + b)
        a, b = pair
        t[:, a] += t[:, b]
        t = np.delete(t, b, axis=1)
    return t.argmax(1)


def _partitions(r: np.ndarray, k: int, cfg: GMVAEConfig, seed: int) -> dict[str, np.ndarray]:
    """Candidate clusterings of r into k clusters: a k-component GMM, and larger GMMs merged to k by entropy."""
    out = {f"a GMM with {k} components": _gmm(r, k, "full", cfg.gmm_n_init, seed).predict(r)}
    for factor in OVERCLUSTER_FACTORS:
        m = min(factor * k, len(r) // MIN_ROWS_PER_CLUSTER)
        if m > k:
            posterior = _gmm(r, m, "full", 3, seed).predict_proba(r)
            out[f"a GMM with {m} components merged to {k} by entropy"] = merge_by_entropy(posterior, k)
    return out


def choose_partition(
    views: Sequence[np.ndarray], k: int, cfg: GMVAEConfig, inputs: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """The clusters [N] for the initial mixture, and why they were chosen.

    ``views`` holds `STABILITY_RUNS` representations [N, d] of the same rows, one per run: the codes themselves each
    time, or UMAP embeddings of them with different seeds, so that stability covers everything random in stage 2. A
    k-component GMM tends to split a big group and join small ones when groups differ in size. So the candidates
    (`_partitions`) are fitted on every view with its own seed, and the one with the highest sum of stability (mean
    adjusted Rand index between the runs) and separation (mean silhouette of each run's clusters in its view, on at
    most 3,000 rows) wins. Scores within `SCORE_TIE` of the best are a tie, which the candidate fitted with the most
    components wins (the candidates come in that order), unless its clusters are the best one's (row 47). A merge
    competes only when its separation is at most `MERGE_SEPARATION_SLACK` below the GMM's; among those, neither
    measure alone decides, so a 0.01 lead in one does not outweigh a clear loss in the other. The gate is there
    because on the digit stand-ins, merges that joined three overlapping digits won on stability alone, making the
    same wrong cut on every run (rows 33-34); row 35's second gate, on how far apart the groups are that a merge
    keeps apart and the GMM joins, left right merges out on unequal digits and was dropped (row 45). The model
    ``inputs`` [N, F] are a last candidate (`_input_partition`, small tables): their own GMM's clusters win when at
    least as stable over 3 GMM seeds as the pick is over the runs (which also vary the embedding; a tie goes to the
    inputs, row 21). Of the winner's runs, the one that agrees most with the others gives the clusters, not the
    first one, whose embedding may be the odd one out (row 24).
    """
    runs = [_partitions(view, k, cfg, cfg.seed + i) for i, view in enumerate(views)]
    names = list(runs[0])
    default = names[0]
    if k < 2:
        return runs[0][default], f"clusters from {default}"
    agreed = {n: _agreement([run[n] for run in runs]) for n in names}
    stability = {n: agreed[n][1] for n in names}
    rows = sample_rows(len(views[0]), 3000, cfg.seed)
    separation = {n: float(np.mean([_silhouette(view[rows], run[n][rows])
                                    for view, run in zip(views, runs, strict=True)])) for n in names}
    score = {n: stability[n] + separation[n] for n in names}
    # stability alone must not buy a merge the win
    left_out = [n for n in names[1:] if separation[n] < separation[default] - MERGE_SEPARATION_SLACK]
    competing = [n for n in names if n not in left_out]
    best = max(competing, key=score.__getitem__)
    finer = max((n for n in competing if score[n] >= score[best] - SCORE_TIE), key=names.index)
    pick = best if _same_partition(agreed[finer][0], agreed[best][0]) else finer
    own = _input_partition(inputs, k, cfg)
    if own is not None and own[1] >= stability[pick]:
        return own[0], (f"clusters from a GMM with {k} components on the model inputs (stability {own[1]:.3f}, at "
                        f"least the {stability[pick]:.3f} of {pick} on the codes)")
    why = (f"stability {stability[pick]:.3f}, silhouette {separation[pick]:.3f}"
           + ("" if pick == default else f" against {stability[default]:.3f} and {separation[default]:.3f} "
              "for the GMM with K components"))
    if pick != best:
        why += (f"; within {SCORE_TIE} of the best score ({score[pick]:.3f} against {score[best]:.3f} for {best}), "
                "the candidate with the most components")
    why += "".join(f"; {n} left out: stability {stability[n]:.3f}, silhouette {separation[n]:.3f}, more than "
                   f"{MERGE_SEPARATION_SLACK} below the GMM with K components"
                   for n in left_out if score[n] > score[pick])
    if own is not None:  # six places where three would show the two stabilities level
        places = 3 if round(own[1], 3) != round(stability[pick], 3) else 6
        why += (f"; a GMM with {k} components on the model inputs left out: stability {own[1]:.{places}f}, below "
                f"the {stability[pick]:.{places}f} of {pick}")
    return agreed[pick][0], f"clusters from {pick} ({why})"


# The model inputs are a stage-2 candidate when there are on average at least this many rows per input feature in
# every cluster (n >= 2 F K), so that full covariances are estimable, and at most `baselines.MAX_FULL_FEATURES`
# features, the bound of the report's full-covariance GMM on the inputs (images never), all of them numeric with
# more than two values (bench/RESULTS.md row 21).
INPUT_ROWS_PER_FEATURE = 2


def _silhouette(r: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette of the clusters ``labels`` [N] in r [N, d]; -1 when there is only one cluster."""
    return float(silhouette_score(r, labels)) if len(set(labels)) > 1 else -1.0


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the clusters [N] of ``a`` and ``b`` are the same up to their numbering."""
    return len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(set(a.tolist())) == len(set(b.tolist()))


def _agreement(partitions: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """The partition [N] that agrees most with the others (highest mean adjusted Rand index to them) and the mean
    adjusted Rand index between every two of the partitions (their stability)."""
    n = len(partitions)
    ari = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            ari[i, j] = ari[j, i] = adjusted_rand_score(partitions[i], partitions[j])
    return partitions[int(np.argmax(ari.sum(1)))], float(ari[np.triu_indices(n, 1)].mean())


def _input_partition(inputs: np.ndarray | None, k: int, cfg: GMVAEConfig) -> tuple[np.ndarray, float] | None:
    """The clusters [N] of a full GMM on the standardized inputs [N, F] (of `STABILITY_RUNS` seeds, the one that
    agrees most with the others) and its stability over the seeds, constant columns left out; None without inputs,
    with more than `MAX_FULL_FEATURES` features or fewer than `INPUT_ROWS_PER_FEATURE` rows per feature and cluster,
    with a two-valued column (one-hot category, missing-value indicator: a full GMM locks onto their 0/1 patterns), or
    when the GMM cannot be fitted (the codes' pick stands)."""
    if inputs is None:
        return None
    x = np.asarray(inputs, np.float64)
    x = x[:, x.min(0) < x.max(0)]  # a constant column carries nothing (and is no 0/1 pattern)
    if not 0 < x.shape[1] <= MAX_FULL_FEATURES or len(x) < INPUT_ROWS_PER_FEATURE * x.shape[1] * k:
        return None
    if any(len(np.unique(column)) == 2 for column in x.T):
        return None
    spread = x.std(0)
    x = (x - x.mean(0)) / np.where(spread > 1e-8 * max(float(spread.max()), 1e-12), spread, 1.0)
    try:
        runs = [_gmm(x, k, "full", cfg.gmm_n_init, cfg.seed + i).predict(x) for i in range(STABILITY_RUNS)]
    except InitialisationError:
        return None
    return _agreement(runs)


def initial_mixture(
    z: np.ndarray, cfg: GMVAEConfig, inputs: np.ndarray | None = None
) -> tuple[MixtureInit, tuple[np.ndarray, ...], np.ndarray]:
    """Cluster latent codes z [N, D] for stage 2: the decision, mixture (weights [K], means and variances [K, D])
    and every code's cluster.

    The clusters come from z itself (``init_method="gmm"``) or from a UMAP embedding of z (``"umap"``:
    neighbourhood structure separates classes the raw codes mix), by `choose_partition`; each cluster's share,
    mean and variance of z set the (diagonal) mixture. No rule prefers even cluster sizes. K is
    ``cfg.n_components``, or when that is None the best K in ``cfg.auto_components`` by `choose_n_components` on
    the same representation. Too few rows for K raise `InitialisationError` saying what to change.
    """
    z = np.asarray(z, dtype=np.float64)
    k = cfg.n_components
    low, high = cfg.auto_components
    check_rows_for_clusters(len(z), k)
    high = min(high, len(z) // MIN_ROWS_PER_CLUSTER)
    if k is None and high < low:
        raise InitialisationError(
            f"{len(z)} rows are too few to choose the number of clusters from {low} upwards: give the number of "
            f"clusters explicitly or bring at least {low * MIN_ROWS_PER_CLUSTER} rows."
        )
    if cfg.init_method == "umap":
        views = [_embedding(z, cfg.seed + i, n_dims=min(10, cfg.latent_dim)) for i in range(STABILITY_RUNS)]
    else:
        views = [z] * STABILITY_RUNS
    r = views[0]
    scores: dict[int, float] = {}
    if k is None:
        k, scores, criterion = choose_n_components(r, low, high, cfg.init_method, cfg.seed)
        reason = f"K={k} is the best of K={low}..{high} by the {criterion}"
    else:
        reason = f"K={k} was given"
    labels, how = choose_partition(views, k, cfg, inputs)
    overall = np.var(z, axis=0)
    weights = np.array([np.mean(labels == c) for c in range(k)])
    means = np.stack([z[labels == c].mean(0) if np.any(labels == c) else z.mean(0) for c in range(k)])
    variances = np.stack([z[labels == c].var(0) if np.sum(labels == c) > 1 else overall for c in range(k)])
    variances = variances + 1e-4 * float(overall.mean() or 1.0)
    return MixtureInit(k, cfg.init_method, scores, f"{reason}; {how}"), (weights, means, variances), labels


def _from_chief(
    strategy: tf.distribute.Strategy, found: tuple[MixtureInit, tuple[np.ndarray, ...], np.ndarray] | None,
    n_sample: int, config: GMVAEConfig,
) -> tuple[MixtureInit, tuple[np.ndarray, ...], np.ndarray]:
    """The chief's initialisation (``found``; None on the other workers) on every worker: K first (the data may
    choose it), then the mixture and the sample's clusters in one all-reduce. One process: ``found`` itself."""
    if n_workers(strategy) == 1:
        return found
    k = int(from_chief(strategy, None if found is None else np.array([found[0].n_components]), (1,))[0])
    d = config.latent_dim
    packed = None if found is None else np.concatenate(
        [found[1][0], found[1][1].ravel(), found[1][2].ravel(), found[2]])
    weights, means, variances, labels = np.split(
        from_chief(strategy, packed, (k + 2 * k * d + n_sample,)), [k, k + k * d, k + 2 * k * d])
    decision = found[0] if found else MixtureInit(k, config.init_method, {}, "the chief worker's initialisation")
    return decision, (weights, means.reshape(k, d), variances.reshape(k, d)), labels.astype(np.int64)


def _cluster_codes(
    model: GMVAE, data: TrainingData, config: GMVAEConfig, strategy: tf.distribute.Strategy | None = None
) -> tuple[MixtureInit, tuple[np.ndarray, ...], SampleLabels]:
    """`initial_mixture` on the codes of a bounded sample of the rows, run once (by the chief) and shared with every
    worker: the decision, the mixture, and the initial cluster of each sample row."""
    strategy = strategy or tf.distribute.get_strategy()
    rows = data.sample_rows(config.init_sample, config.seed)
    if is_chief(strategy):
        x = data.take(rows)
        found = initial_mixture(latent_means(model, x), config, inputs=x)
    else:
        found = None
    decision, mixture, labels = _from_chief(strategy, found, len(rows), config)
    return decision, mixture, SampleLabels(rows, labels)


def fine_tune(
    model: GMVAE,
    x: np.ndarray | TrainingData,
    strategy: tf.distribute.Strategy,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 1,
    checkpoint_dir: str | None = None,
    init_labels: SampleLabels | None = None,
) -> dict[str, list]:
    """Stage 3: minimise the negative ELBO (+ configured terms) with KL warm-up and cosine LR decay.

    ``init_labels`` (the clusters of the initialisation's sample rows) feed the init-label term.
    """
    cfg = model.config
    if cfg.epochs <= 0:
        return {}
    data = as_training_data(x)
    steps = cfg.epochs * data.steps(cfg.batch_size)
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
        **data.fit_inputs(cfg.batch_size, cfg.seed, init_labels),
        epochs=cfg.epochs,
        verbose=keras_verbose,
        callbacks=[
            *_backup(checkpoint_dir, FINE_TUNE),
            KLWarmup(cfg.kl_warmup_epochs),
            keras.callbacks.TerminateOnNaN(),
            *callbacks,
            *progress,
        ],
    )
    return _finite_history(dict(hist.history), "fine-tuning")


def build_model(config: GMVAEConfig, strategy: tf.distribute.Strategy | None = None) -> GMVAE:
    """A built (variables created) GMVAE under `strategy`'s scope; K=1 until a K is chosen (``n_components=None``)."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = GMVAE(config if config.n_components else config.replace(n_components=1))
        model(tf.zeros([1, config.input_dim]))
    # the logged metrics are already means over every replica: Keras' default ("sum" under MultiWorkerMirroredStrategy)
    # would add them up once more over the workers
    model.distribute_reduction_method = "first"
    return model


def _stage_checkpoint(model: GMVAE, with_prior: bool) -> tf.train.Checkpoint:
    """The weights a finished stage hands to the next one, and no optimizer state: a resumed fine-tuning starts
    its own optimizer (and learning-rate schedule) at step 0, as an uninterrupted one does."""
    parts = {"encoder": model.encoder, "decoder": model.decoder}
    if model.log_noise is not None:
        parts["noise"] = {"log_noise": model.log_noise}
    if with_prior:
        parts["prior"] = model.prior
    return tf.train.Checkpoint(**parts)


def _stage_done(checkpoint_dir: str | None, stage: str) -> dict | None:
    """What ``stage`` recorded when a previous attempt finished it, or None."""
    if checkpoint_dir is None:
        return None
    done = os.path.join(checkpoint_dir, stage, "DONE")
    if not tf.io.gfile.exists(done):
        return None
    with tf.io.gfile.GFile(done) as f:
        return json.load(f)


def _mark_done(
    model: GMVAE, checkpoint_dir: str | None, stage: str, record: dict, strategy: tf.distribute.Strategy
) -> None:
    """Save a finished stage (every worker saves, only the chief's copy is kept)."""
    if checkpoint_dir is None:
        return
    with write_dir(os.path.join(checkpoint_dir, stage), strategy) as stage_dir:
        _stage_checkpoint(model, with_prior=stage == INIT).write(os.path.join(stage_dir, "weights"))
        with tf.io.gfile.GFile(os.path.join(stage_dir, "DONE"), "w") as f:
            json.dump(record, f)


def _restore(model: GMVAE, checkpoint_dir: str, stage: str) -> None:
    _stage_checkpoint(model, with_prior=stage == INIT).read(os.path.join(checkpoint_dir, stage, "weights")) \
        .assert_existing_objects_matched()


def binary_columns(x: np.ndarray, min_share: float = MIN_BINARY_SHARE) -> tuple[int, ...]:
    """Indices of the columns of x [N, F] with exactly two values, one on each side of 0 (standardised), each in
    at least ``min_share`` of the rows: rarer values are outliers of a near-constant column, not a category."""
    low, high = x.min(axis=0), x.max(axis=0)
    two_valued = np.all((x == low) | (x == high), axis=0) & (low < 0) & (high > 0)
    rarer = np.minimum((x == low).mean(axis=0), (x == high).mean(axis=0))
    return tuple(int(j) for j in np.flatnonzero(two_valued & (rarer >= min_share)))


def fit_gmvae(
    x: np.ndarray | TrainingData,
    config: GMVAEConfig,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 1,
    checkpoint_dir: str | None = None,
    on_stage: Callable[[str, GMVAE], None] | None = None,
) -> tuple[GMVAE, dict[str, Any]]:
    """Train a GMVAE on x [N, input_dim] (floats in [0, 1] for Bernoulli; an array or a stream of records, see
    `model.data.TrainingData`) with the full recipe.

    Deterministic given `config.seed` (seeds Python/NumPy/TF and turns on TF op determinism).
    `callbacks` (TensorBoard, ...) are passed to the fine-tuning fit. With `checkpoint_dir`, an interrupted
    training resumes when called again with the same directory: finished stages are reloaded (their weights are
    saved at the end of each stage, without optimizer state) and the interrupted stage continues after its last
    finished epoch (Keras BackupAndRestore). A NaN or infinite loss stops training with `TrainingDivergedError`;
    data too small for the clusters asked for raises `InitialisationError`. ``on_stage(stage, model)`` is called
    after "pretrain" (the autoencoder is trained) and "init" (the mixture is set), e.g. to score baselines on the
    same autoencoder's codes.
    Under a multi-worker strategy every worker calls it: the chief alone initialises the mixture (and shares it)
    and keeps the stage checkpoints.
    Returns the model (its config has the chosen K and, for tables, the two-valued columns `binary_columns` found,
    kept in the stage checkpoints so a resumed run uses the same) and a history dict (per-epoch losses of the stages
    run, stage seconds, `resumed_stages`, `n_components`, `k_reason`, `k_scores`, `init_method`). A reloaded stage
    reports the seconds it took when it was made; a stage that went on after an interruption, those after the resume.
    """
    data = as_training_data(x)
    if data.input_dim != config.input_dim:
        raise ValueError(f"x must have shape [N, {config.input_dim}], got {data.n_rows} x {data.input_dim}")
    if data.array is not None and not np.all(np.isfinite(data.array)):
        raise ValueError("x contains NaN or infinite values")
    check_rows_for_clusters(min(data.n_rows, config.init_sample), config.n_components)  # before any training
    initialised, pretrained = _stage_done(checkpoint_dir, INIT), _stage_done(checkpoint_dir, PRETRAIN)
    if config.likelihood == "gaussian" and config.binary_features is None:  # a resumed run keeps the first run's
        found = (pretrained or {}).get("binary_features")
        config = config.replace(binary_features=tuple(found) if found is not None else
                                binary_columns(data.sample(config.init_sample, config.seed)[1]))
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    strategy = strategy or tf.distribute.get_strategy()
    model = build_model(config, strategy)
    history: dict[str, Any] = {"resumed_stages": []}
    start = time.perf_counter()
    if pretrained:
        _restore(model, checkpoint_dir, PRETRAIN)
        history["resumed_stages"].append(PRETRAIN)
        # the stage's time when it was made (a record written before it kept that: the time to reload)
        history[seconds_key(PRETRAIN)] = pretrained.get("seconds", time.perf_counter() - start)
    else:
        history.update(pretrain(model, data, strategy, verbose, checkpoint_dir))
        history[seconds_key(PRETRAIN)] = time.perf_counter() - start
        _mark_done(model, checkpoint_dir, PRETRAIN, {"stage": PRETRAIN, "binary_features": config.binary_features,
                                                        "seconds": history[seconds_key(PRETRAIN)]}, strategy)
    if on_stage:
        on_stage(PRETRAIN, model)
    start = time.perf_counter()
    if initialised:
        decision = MixtureInit(**{**initialised["decision"],
                                  "scores": {int(k): v for k, v in initialised["decision"]["scores"].items()}})
        init_labels = SampleLabels(data.sample_rows(config.init_sample, config.seed),
                                   np.asarray(initialised["sample_labels"], dtype=np.int64))
        model = _with_components(model, decision.n_components, strategy)
        _restore(model, checkpoint_dir, INIT)
        history["resumed_stages"].append(INIT)
        init_seconds = initialised.get("seconds", time.perf_counter() - start)
    else:
        decision, mixture, init_labels = _cluster_codes(model, data, config, strategy)
        model = _with_components(model, decision.n_components, strategy)
        model.prior.set_mixture(*mixture)
        init_seconds = time.perf_counter() - start
        _mark_done(model, checkpoint_dir, INIT, {"decision": dataclasses.asdict(decision), "seconds": init_seconds,
                                                   "sample_labels": init_labels.labels.tolist()}, strategy)
    history.update(n_components=decision.n_components, k_reason=decision.reason, k_scores=decision.scores,
                   init_method=decision.method, **{seconds_key(INIT): init_seconds})
    if on_stage:
        on_stage(INIT, model)
    start = time.perf_counter()
    history.update(fine_tune(model, data, strategy, callbacks, verbose, checkpoint_dir, init_labels))
    history[seconds_key(FINE_TUNE)] = time.perf_counter() - start
    return model, history


def with_networks(source: GMVAE, config: GMVAEConfig, strategy: tf.distribute.Strategy | None = None) -> GMVAE:
    """A new GMVAE built from ``config`` with a copy of ``source``'s encoder, decoder and noise (its own prior)."""
    model = build_model(config, strategy)
    model.encoder.set_weights(source.encoder.get_weights())
    model.decoder.set_weights(source.decoder.get_weights())
    if source.log_noise is not None:
        model.log_noise.assign(source.log_noise)
    return model


def _with_components(model: GMVAE, k: int, strategy: tf.distribute.Strategy) -> GMVAE:
    """``model`` itself if it has K components, else a GMVAE with K components and the same networks."""
    if model.config.n_components == k:
        return model
    return with_networks(model, model.config.replace(n_components=k), strategy)
