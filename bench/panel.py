"""The benchmark panel: the GMVAE against what a user would pick instead, on the same data in the same run.

    python -m bench.panel --json bench/results/panel.json            # the reported panel (test data), 3 seeds
    python -m bench.panel --datasets mnist_dev wine --json /tmp/dev.json   # tuning runs: dev data only

Methods (K = the number of classes for every method, except ``gmvae_auto`` which chooses K itself):
``kmeans`` / ``gmm`` on the inputs (PCA-50 for images; GMM diagonal on images, full on tables); ``ae_kmeans`` /
``ae_gmm`` (full GMM) on the codes of the GMVAE's own pre-trained autoencoder; ``vae_gmm``: the same autoencoder
fine-tuned as a VAE with a single-Gaussian prior (K=1, same epochs), then a full GMM on its codes; ``gmvae_init``:
the GMVAE right after its mixture initialisation (UMAP + GMM on the codes for images), before fine-tuning;
``gmvae``: the trained model. Labels are used only for scoring. Results are written after every (dataset, seed), and
a re-run with the same ``--json`` skips what is there, so an interrupted panel continues.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import datasets
from bench.datasets import Dataset


def scores(data: Dataset, clusters: np.ndarray, seconds: float) -> dict[str, float]:
    """ACC, NMI, ARI, the largest gap between a class's share and its matched cluster's share, clusters used."""
    from model import metrics

    clusters = np.asarray(clusters, dtype=np.int64)
    return {
        "acc": metrics.cluster_accuracy(data.y, clusters),
        "nmi": metrics.nmi(data.y, clusters),
        "ari": metrics.ari(data.y, clusters),
        "share_error": metrics.share_error(data.y, clusters),
        "clusters_used": float(len(np.unique(clusters))),
        "train_seconds": seconds,
    }


def _timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def input_baselines(data: Dataset, k: int, seed: int) -> dict[str, dict[str, float]]:
    """k-means and a GMM on the inputs (PCA-50 of images)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    start = time.perf_counter()
    r = PCA(50, random_state=seed).fit_transform(data.x) if data.kind == "image" else data.x
    pca_seconds = time.perf_counter() - start
    covariance = "diag" if data.kind == "image" else "full"
    kmeans, s1 = _timed(lambda: KMeans(k, n_init=10, random_state=seed).fit_predict(r))
    gmm, s2 = _timed(lambda: GaussianMixture(k, covariance_type=covariance, n_init=3, reg_covar=1e-4,
                                             random_state=seed).fit(r).predict(r))
    return {"kmeans": scores(data, kmeans, pca_seconds + s1), "gmm": scores(data, gmm, pca_seconds + s2)}


def model_config(data: Dataset, k: int | None, seed: int, changes: dict[str, Any]) -> Any:
    from model.config import GMVAEConfig

    if data.kind == "image":
        base = GMVAEConfig.for_mnist(input_dim=data.x.shape[1], image_shape=data.image_shape, input_scale=1.0)
    else:
        base = GMVAEConfig.for_table(len(data.x), data.x.shape[1])
    return base.replace(n_components=k, seed=seed, **changes)


def deep_methods(data: Dataset, k: int, seed: int, changes: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The GMVAE and every baseline that reuses its autoencoder (one pre-training per seed)."""
    import tensorflow as tf
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    from model.config import FINE_TUNE, PRETRAIN, seconds_key
    from model.training import fine_tune, fit_gmvae, latent_means, with_networks

    results: dict[str, dict[str, float]] = {}
    hook_seconds = {"total": 0.0}
    saved: dict[str, Any] = {}

    def on_stage(stage: str, model: Any) -> None:
        start = time.perf_counter()
        if stage == PRETRAIN:
            codes = latent_means(model, data.x)
            # the single-Gaussian VAE starts from this same autoencoder (K=1, no clustering terms)
            saved.update(vae=with_networks(model, model.config.replace(n_components=1, self_training_weight=0.0,
                                                                       balance_weight=0.0)),
                         pretrain_seconds=time.perf_counter() - start_fit)
            km, s1 = _timed(lambda: KMeans(k, n_init=10, random_state=seed).fit_predict(codes))
            gm, s2 = _timed(lambda: GaussianMixture(k, covariance_type="full", n_init=3, reg_covar=1e-4,
                                                    random_state=seed).fit(codes).predict(codes))
            results["ae_kmeans"] = scores(data, km, saved["pretrain_seconds"] + s1)
            results["ae_gmm"] = scores(data, gm, saved["pretrain_seconds"] + s2)
        else:
            results["gmvae_init"] = scores(data, model.predict_outputs(data.x)["cluster"],
                                           time.perf_counter() - start_fit - hook_seconds["total"])
        hook_seconds["total"] += time.perf_counter() - start

    config = model_config(data, k, seed, changes)
    start_fit = time.perf_counter()
    model, history = fit_gmvae(data.x, config, verbose=0, on_stage=on_stage)
    seconds = time.perf_counter() - start_fit - hook_seconds["total"]
    results["gmvae"] = scores(data, model.predict_outputs(data.x)["cluster"], seconds)
    results["gmvae"]["fine_tune_seconds"] = history[seconds_key(FINE_TUNE)]

    # A VAE with one Gaussian as its prior, fine-tuned from the same autoencoder for the same epochs.
    start = time.perf_counter()
    vae = saved["vae"]
    codes = latent_means(vae, data.x)
    vae.prior.set_mixture(np.ones(1), codes.mean(0, keepdims=True), codes.var(0, keepdims=True))
    fine_tune(vae, data.x, tf.distribute.get_strategy(), verbose=0)
    codes = latent_means(vae, data.x)
    clusters = GaussianMixture(k, covariance_type="full", n_init=3, reg_covar=1e-4,
                               random_state=seed).fit(codes).predict(codes)
    results["vae_gmm"] = scores(data, clusters, saved["pretrain_seconds"] + time.perf_counter() - start)

    if data.kind == "table":  # the data chooses K (cheap on tables)
        start = time.perf_counter()
        auto, history = fit_gmvae(data.x, config.replace(n_components=None), verbose=0)
        results["gmvae_auto"] = scores(data, auto.predict_outputs(data.x)["cluster"], time.perf_counter() - start)
        results["gmvae_auto"]["chosen_k"] = float(history["n_components"])
    return results


def _load(path: str | None) -> dict[str, Any]:
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"datasets": {}}


def _save(path: str | None, panel: dict[str, Any]) -> None:
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(f"{path}.tmp", "w") as f:
        json.dump(panel, f, indent=1)
    os.replace(f"{path}.tmp", path)


def run_panel(names: list[str], seeds: int, path: str | None, changes: dict[str, Any]) -> dict[str, Any]:
    """Run every (dataset, seed) not yet in the JSON at ``path``; returns the whole panel."""
    panel = _load(path)
    for name in names:
        data = datasets.load(name)
        entry = panel["datasets"].setdefault(name, {"n": len(data.x), "k": data.n_classes,
                                                     "class_shares": data.class_shares.round(4).tolist(),
                                                     "seeds": [], "methods": {}})
        for seed in range(seeds):
            if seed in entry["seeds"]:
                continue
            print(f"{name} (n={len(data.x)}, K={data.n_classes}) seed {seed} ...", flush=True)
            results = {**input_baselines(data, data.n_classes, seed), **deep_methods(data, data.n_classes, seed,
                                                                                          changes)}
            for method, metrics in results.items():
                for metric, value in metrics.items():
                    entry["methods"].setdefault(method, {}).setdefault(metric, []).append(float(value))
            entry["seeds"].append(seed)
            print("  " + ", ".join(f"{m} {r['acc']:.3f}" for m, r in results.items()), flush=True)
            _save(path, panel)
    return panel


def markdown(panel: dict[str, Any]) -> str:
    """Median ACC / NMI per method and dataset, and the GMVAE's ratio to the best non-GMVAE method."""
    lines = []
    for name, entry in panel["datasets"].items():
        methods = entry["methods"]
        med = {m: {k: float(np.median(v)) for k, v in r.items()} for m, r in methods.items()}
        baselines = [m for m in med if not m.startswith("gmvae")]
        best = max(baselines, key=lambda m: med[m]["acc"]) if baselines else None
        lines += [f"\n**{name}** (n={entry['n']}, K={entry['k']}, seeds {entry['seeds']})\n",
                  "| method | ACC (median, min-max) | NMI | ARI | share error | train s |", "|---|---|---|---|---|---|"]
        for m, r in methods.items():
            lines.append(f"| {m} | {med[m]['acc']:.3f} ({min(r['acc']):.3f}-{max(r['acc']):.3f}) | "
                         f"{med[m]['nmi']:.3f} | {med[m]['ari']:.3f} | {med[m]['share_error']:.3f} | "
                         f"{med[m]['train_seconds']:.0f} |")
        if best and "gmvae" in med:
            lines.append(f"\nGMVAE / best other ({best}): ACC x{med['gmvae']['acc'] / med[best]['acc']:.2f}, "
                         f"NMI x{med['gmvae']['nmi'] / max(med[best]['nmi'], 1e-9):.2f}")
    return "\n".join(lines)


SUMMARY_METHODS = ("kmeans", "gmm", "ae_kmeans", "ae_gmm", "vae_gmm", "gmvae_init", "gmvae")


def summary(panel: dict[str, Any]) -> str:
    """One row per dataset: median ACC of every method, the GMVAE's NMI, seed range and share error, and its ratio to
    the best other method (the README table)."""
    head = ["dataset (n, K)", *SUMMARY_METHODS, "GMVAE NMI", "GMVAE ACC range", "GMVAE share error",
            "GMVAE / best other"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, entry in panel["datasets"].items():
        med = {m: float(np.median(r["acc"])) for m, r in entry["methods"].items()}
        others = {m: v for m, v in med.items() if not m.startswith("gmvae")}
        best = max(others, key=others.get)
        gmvae = entry["methods"]["gmvae"]
        accs = (f"{med[m]:.3f}" if m in med else "" for m in SUMMARY_METHODS)
        cells = [f"{name} ({entry['n']}, {entry['k']})", *accs,
                 f"{np.median(gmvae['nmi']):.3f}", f"{min(gmvae['acc']):.3f}-{max(gmvae['acc']):.3f}",
                 f"{np.median(gmvae['share_error']):.3f}", f"x{med['gmvae'] / others[best]:.2f} ({best})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.panel", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--datasets", nargs="+", default=list(datasets.PANEL),
                        help=f"datasets to run (panel: {' '.join(datasets.PANEL)}; dev: {' '.join(datasets.DEV)})")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 of every seeded method")
    parser.add_argument("--json", default=None, help="results file (written after every dataset and seed)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="GMVAEConfig change for the deep methods, e.g. --set pretrain_epochs=50 (tuning on dev)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        changes = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
        for name in args.datasets:
            if name not in datasets.PANEL + datasets.DEV:
                raise ValueError(f"unknown dataset {name!r}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    panel = run_panel(args.datasets, args.seeds, args.json, changes)
    panel["wall_seconds"] = panel.get("wall_seconds", 0.0) + time.perf_counter() - start
    _save(args.json, panel)
    print(markdown(panel))
    print("\n" + summary(panel))
    print(f"\nwall time of this invocation: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
