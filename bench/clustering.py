"""Clustering benchmark: GMVAE (several seeds) vs k-means on pixels vs a diagonal GMM on PCA-50.

Run from the repo root:

    python -m bench.clustering --data ../shared/data/mnist10k.npz --seeds 3 --json OUT.json

Prints a markdown table (ACC, NMI, ARI, training seconds and examples/second), writes the
per-seed numbers as JSON and two PNGs (decoded component means, 2-D PCA of latent means).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np


def load_images(path: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(x float32 [N, H*W] in [0, 1], labels [N], (H, W)) from an npz with `images` uint8 and `labels`."""
    if not os.path.isfile(path):
        raise ValueError(f"data file {path!r} does not exist")
    try:
        with np.load(path) as data:
            images, labels = data["images"], data["labels"]
    except Exception as exc:  # any unreadable / malformed file gets the same one-line error
        raise ValueError(f"{path!r} is not an npz file with 'images' and 'labels' arrays ({exc})") from exc
    if images.ndim != 3 or len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"{path!r}: expected images [N, H, W] and labels [N], got {images.shape}, {labels.shape}")
    scale = 255.0 if images.max() > 1 else 1.0
    x = images.reshape(len(images), -1).astype(np.float32) / scale
    return x, labels.astype(np.int64), (int(images.shape[1]), int(images.shape[2]))


def scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    from model import metrics

    return {
        "acc": metrics.cluster_accuracy(labels, clusters),
        "nmi": metrics.nmi(labels, clusters),
        "ari": metrics.ari(labels, clusters),
    }


def run_gmvae(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], seed: int, args: argparse.Namespace) -> dict:
    from model import metrics
    from model.config import GMVAEConfig
    from model.training import fit_gmvae

    changes: dict[str, Any] = {"seed": seed, "input_dim": x.shape[1], "image_shape": shape}
    if args.pretrain_epochs is not None:
        changes["pretrain_epochs"] = args.pretrain_epochs
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    config = GMVAEConfig.for_mnist(**changes)
    start = time.perf_counter()
    model, _ = fit_gmvae(x, config, verbose=1)
    seconds = time.perf_counter() - start
    out = model.predict_outputs(x)
    result = scores(y, out["cluster"])
    result.update(metrics.occupancy(out["cluster"], config.n_components))
    result["train_seconds"] = seconds
    result["examples_per_second"] = len(x) * (config.pretrain_epochs + config.epochs) / seconds
    return {"result": result, "model": model, "outputs": out}


def run_kmeans(x: np.ndarray, y: np.ndarray, k: int) -> dict:
    from sklearn.cluster import KMeans

    start = time.perf_counter()
    clusters = KMeans(k, n_init=10, random_state=0).fit_predict(x)
    seconds = time.perf_counter() - start
    return {**scores(y, clusters), "train_seconds": seconds, "examples_per_second": len(x) / seconds}


def run_gmm_pca(x: np.ndarray, y: np.ndarray, k: int) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    start = time.perf_counter()
    codes = PCA(50, random_state=0).fit_transform(x)
    clusters = GaussianMixture(k, covariance_type="diag", random_state=0).fit_predict(codes)
    seconds = time.perf_counter() - start
    return {**scores(y, clusters), "train_seconds": seconds, "examples_per_second": len(x) / seconds}


def save_plots(model: Any, outputs: dict, shape: tuple[int, int], prefix: str) -> list[str]:
    """Decoded component means (one prototype per cluster) and a PCA of latent means by cluster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    k = model.config.n_components
    prototypes = model.decode(model.prior.loc).mean().numpy().reshape(k, *shape)
    cols = min(k, 10)
    rows = int(np.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.4 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < k:
            ax.imshow(prototypes[i], cmap="gray")
            ax.set_title(f"c{i}", fontsize=8)
    fig.tight_layout()
    proto_path = prefix + "_prototypes.png"
    fig.savefig(proto_path, dpi=100)
    plt.close(fig)

    latent, clusters = outputs["latent_mean"], outputs["cluster"]
    xy = PCA(2, random_state=0).fit_transform(latent)
    fig, ax = plt.subplots(figsize=(6, 6))
    scatter = ax.scatter(xy[:, 0], xy[:, 1], c=clusters, cmap="tab10", s=2)
    ax.legend(*scatter.legend_elements(), title="cluster", fontsize=7, loc="best")
    ax.set_title("latent means (PCA), coloured by cluster")
    latent_path = prefix + "_latent.png"
    fig.savefig(latent_path, dpi=100)
    plt.close(fig)
    return [proto_path, latent_path]


def table(methods: dict[str, dict[str, list[float]]]) -> str:
    lines = [
        "| method | ACC | NMI | ARI | train seconds | training examples/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in methods.items():
        acc = ", ".join(f"{v:.3f}" for v in r["acc"])
        med = f" (median {np.median(r['acc']):.3f})" if len(r["acc"]) > 1 else ""
        lines.append(
            f"| {name} | {acc}{med} | {', '.join(f'{v:.3f}' for v in r['nmi'])} | "
            f"{', '.join(f'{v:.3f}' for v in r['ari'])} | {', '.join(f'{v:.0f}' for v in r['train_seconds'])} | "
            f"{', '.join(f'{v:.0f}' for v in r['examples_per_second'])} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.clustering",
        description="Benchmark the GMVAE against k-means and a PCA-50 GMM on an image npz file.",
    )
    parser.add_argument(
        "--data", default="../shared/data/mnist10k.npz", help="npz with images uint8 [N,H,W] and labels [N]"
    )
    parser.add_argument("--seeds", type=int, default=3, help="number of GMVAE seeds (0, 1, ...) (default 3)")
    parser.add_argument("--json", help="write per-seed results to this JSON file")
    parser.add_argument(
        "--plots", default=None, help="path prefix of the two PNGs (default: next to --json, else bench_clustering)"
    )
    parser.add_argument("--limit", type=int, help="use only the first N examples (quick runs)")
    parser.add_argument("--pretrain-epochs", type=int, help="override the autoencoder pre-training epochs")
    parser.add_argument("--epochs", type=int, help="override the GMVAE fine-tuning epochs")
    parser.add_argument("--clusters", type=int, default=10, help="clusters of the baselines (default 10)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        x, y, shape = load_images(args.data)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    wall = time.perf_counter()
    methods: dict[str, dict[str, list[float]]] = {}
    runs = []
    for seed in range(args.seeds):
        run = run_gmvae(x, y, shape, seed, args)
        runs.append(run)
        r = run["result"]
        print(f"gmvae seed {seed}: " + json.dumps({k: round(v, 4) for k, v in r.items()}), flush=True)
        for key, value in r.items():
            methods.setdefault("gmvae", {}).setdefault(key, []).append(value)
    for name, fn in (("kmeans", run_kmeans), ("gmm_pca50", run_gmm_pca)):
        r = fn(x, y, args.clusters)
        print(f"{name}: " + json.dumps({k: round(v, 4) for k, v in r.items()}), flush=True)
        methods[name] = {k: [v] for k, v in r.items()}
    median_run = runs[int(np.argsort(methods["gmvae"]["acc"])[len(runs) // 2])]
    prefix = args.plots or (os.path.splitext(args.json)[0] if args.json else "bench_clustering")
    plots = save_plots(median_run["model"], median_run["outputs"], shape, prefix)
    total = time.perf_counter() - wall
    print(table(methods))
    print(f"total wall time {total:.0f} s; plots: {', '.join(plots)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"methods": methods, "wall_seconds": total, "n_examples": len(x), "plots": plots}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
