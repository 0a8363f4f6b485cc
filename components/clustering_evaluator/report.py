"""Human-readable evaluation report: PNG plots and a markdown page that links them."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from tfx.dsl.io import fileio

from components.clustering_evaluator.bless_rules import METRICS, RELATIVE_TOLERANCE_FLOORS
from components.clustering_evaluator.decision import Decision
from model.features import N_EXAMPLES

OCCUPANCY_PNG = "occupancy.png"
LATENT_PNG = "latent_pca.png"
PROTOTYPES_PNG = "prototypes.png"
MAX_SCATTER_POINTS = 5000


def save_png(fig: Figure, path: str) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    with fileio.open(path, "wb") as f:
        f.write(buffer.getvalue())


def plot_occupancy(
    cluster_ids: Sequence[int], cluster_counts: Mapping[str, np.ndarray], path: str,
    mixture_weights: Sequence[float] | None = None
) -> None:
    """Grouped bar chart of the share of examples per cluster ID (``cluster_counts`` and ``mixture_weights`` are in
    ``cluster_ids`` order), one group member per model; the candidate's learned mixture weights as markers when
    given (NaN for an ID the candidate does not use)."""
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(cluster_counts)
    for i, (name, counts) in enumerate(cluster_counts.items()):
        share = counts / max(counts.sum(), 1)
        ax.bar(np.arange(len(counts)) + (i - (len(cluster_counts) - 1) / 2) * width, share, width, label=name)
    if mixture_weights:
        ax.scatter(np.arange(len(mixture_weights)), mixture_weights, marker="_", s=400, color="black", zorder=3,
                   label="candidate's learned mixture weight")
    ax.set(xlabel="cluster ID", ylabel="share of examples", title="Cluster occupancy")
    ax.set_xticks(np.arange(len(cluster_ids)), [str(i) for i in cluster_ids])
    ax.legend()
    save_png(fig, path)


def plot_latent_pca(latent: np.ndarray, clusters: np.ndarray, path: str, seed: int = 0) -> None:
    """2-D PCA projection of the latent means (a random sample), coloured by cluster."""
    if len(latent) > MAX_SCATTER_POINTS:
        keep = np.random.default_rng(seed).choice(len(latent), MAX_SCATTER_POINTS, replace=False)
        latent, clusters = latent[keep], clusters[keep]
    n_components = min(2, latent.shape[1], len(latent))
    projected = PCA(n_components=n_components).fit_transform(latent)
    if n_components < 2:
        projected = np.column_stack([projected[:, 0], np.zeros(len(projected))])
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab20"]
    for k in np.unique(clusters):
        members = clusters == k
        ax.scatter(projected[members, 0], projected[members, 1], color=colours(int(k) % 20), s=6, alpha=0.7, label=k)
    if len(np.unique(clusters)) <= 20:
        ax.legend(title="cluster", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2)
    ax.set(xlabel="PC 1", ylabel="PC 2", title="Latent means (PCA), coloured by cluster")
    save_png(fig, path)


def draw_prototype(ax: Axes, members: np.ndarray, shape: Sequence[int], title: str, fontsize: int) -> None:
    """The mean image of ``members`` [n, H*W] on ``ax`` (blank when there are none), titled, without axes."""
    if len(members):
        ax.imshow(np.nanmean(members, axis=0).reshape(shape), cmap="gray_r")
    ax.set_title(title, fontsize=fontsize)
    ax.axis("off")


def plot_prototypes(inputs: np.ndarray, clusters: np.ndarray, cluster_ids: Sequence[int], shape: Sequence[int],
                    path: str) -> None:
    """The mean input image of the members of each of ``cluster_ids`` (blank for an empty cluster)."""
    cols = min(len(cluster_ids), 10)
    rows = math.ceil(len(cluster_ids) / cols)
    fig = Figure(figsize=(max(1.2 * cols, 4.0), 1.4 * rows + 0.5), layout="constrained")
    for position, k in enumerate(cluster_ids):
        members = inputs[clusters == k]
        draw_prototype(fig.add_subplot(rows, cols, position + 1), members, shape, f"{k} (n={len(members)})", 8)
    fig.suptitle("Cluster prototypes (mean input of the members)")
    save_png(fig, path)


def _fmt(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    info = METRICS.get(metric)
    if info is not None:
        return info.format(value)
    return str(value) if isinstance(value, int) else f"{value:g}"


def _bullets(items: Iterable[str]) -> list[str]:
    return [f"- {item}" for item in items] or ["- none"]


def write_markdown(
    path: str,
    decision: Decision,
    candidate: Mapping[str, float | None],
    baseline: Mapping[str, float | None] | None,
    baseline_description: str,
    thresholds: Mapping[str, float],
    tolerances: Mapping[str, float],
    plots: Sequence[tuple[str, str]],
    notes: Sequence[str] = (),
    sections: Sequence[Sequence[str]] = (),
) -> None:
    """The report page: decision and its reasons, metric table, the extra `sections` (markdown lines: baseline
    comparison, K, cluster profiles), thresholds, tolerances, notes and plots."""
    lines = [
        "# Clustering evaluation",
        "",
        f"**{decision.summary}**",
        "",
        f"Baseline: {baseline_description}",
        "",
    ]
    if decision.reasons:
        lines += ["## Reasons for rejection", "", *_bullets(decision.reasons), ""]
    lines += ["## Checks passed", "", *_bullets([*decision.passed, *decision.comparisons]), ""]
    header = "| metric | better | candidate |" + (" baseline |" if baseline is not None else "")
    lines += ["## Metrics", "", header, "|" + "---|" * (header.count("|") - 1)]
    for metric in (*METRICS, N_EXAMPLES):
        if metric not in candidate:
            continue
        better = "" if metric not in METRICS else "higher" if METRICS[metric].higher_is_better else "lower"
        row = f"| {metric} | {better} | {_fmt(metric, candidate.get(metric))} |"
        if baseline is not None:
            row += f" {_fmt(metric, baseline.get(metric))} |"
        lines.append(row)
    lines.append("")
    for section in sections:
        lines += list(section)
    lines += ["## Thresholds", "", *_bullets(f"`{k}`: {v:g}" for k, v in thresholds.items()), ""]
    relative = ", ".join(f"`{k}` a share of max(|baseline|, {floor:g})"
                         for k, floor in RELATIVE_TOLERANCE_FLOORS.items())
    lines += [
        f"## Regression tolerances (allowed worsening vs baseline; {relative})",
        "",
        *_bullets(f"`{k}`: {v:g}" for k, v in tolerances.items()),
        "",
    ]
    if notes:
        lines += ["## Notes", "", *_bullets(notes), ""]
    for title, filename in plots:
        lines += [f"## {title}", "", f"![{title}]({filename})", ""]
    with fileio.open(path, "w") as f:
        f.write("\n".join(lines))


def write_plots(
    output_dir: str,
    cluster_ids: Sequence[int],
    cluster_counts: Mapping[str, np.ndarray],
    latent: np.ndarray,
    clusters: np.ndarray,
    prototypes: tuple[np.ndarray, Sequence[int], Sequence[int]] | None,
    mixture_weights: Sequence[float] | None = None,
) -> list[tuple[str, str]]:
    """Writes the PNGs into `output_dir`; returns [(title, file name)] for the markdown page. ``cluster_counts`` and
    ``mixture_weights`` are in ``cluster_ids`` order: the IDs the compared models use, not the retired ones;
    ``prototypes`` is (model inputs, image shape, the candidate's cluster IDs)."""
    plot_occupancy(cluster_ids, cluster_counts, os.path.join(output_dir, OCCUPANCY_PNG), mixture_weights)
    plot_latent_pca(latent, clusters, os.path.join(output_dir, LATENT_PNG))
    plots = [("Cluster occupancy", OCCUPANCY_PNG), ("Latent space", LATENT_PNG)]
    if prototypes is not None:
        inputs, shape, candidate_ids = prototypes
        plot_prototypes(inputs, clusters, candidate_ids, shape, os.path.join(output_dir, PROTOTYPES_PNG))
        plots.append(("Cluster prototypes", PROTOTYPES_PNG))
    return plots
