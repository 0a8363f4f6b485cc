"""Cluster profiles for tables, what prototypes are for images: what sets each cluster apart, so a person can name it.

Per numeric input column: the cluster's mean against the whole eval split's mean; a cluster's distinguishing
features are the largest |cluster mean - overall mean| / overall std. Per categorical column: the most frequent
category in the cluster (not for free-text columns, with a different value in most rows: `MAX_DISTINCT_SHARE`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

TOP_FEATURES = 3
MAX_TABLE_FEATURES = 30
MAX_DISTINCT_SHARE = 0.5  # a text column with more distinct values than this share of the rows is free text


def _fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4g}"


def cluster_profiles(
    clusters: np.ndarray,
    cluster_ids: Sequence[int],
    numeric: np.ndarray | None,
    numeric_names: Sequence[str],
    categories: np.ndarray | None = None,
    category_names: Sequence[str] = (),
) -> dict[str, Any]:
    """JSON-ready profiles: overall means/stds and, per cluster ID of ``cluster_ids`` (the model's current IDs, not
    retired ones), size, means, top distinguishing features, modes."""
    clusters = np.asarray(clusters).ravel()
    free_text = [j for j, _ in enumerate(category_names) if categories is not None
                 and len(set(categories[:, j])) > max(2, MAX_DISTINCT_SHARE * len(clusters))]
    if free_text:
        keep = [j for j in range(len(category_names)) if j not in free_text]
        skipped = [category_names[j] for j in free_text]
        categories, category_names = categories[:, keep], [category_names[j] for j in keep]
    numeric = np.empty((len(clusters), 0)) if numeric is None else np.asarray(numeric, dtype=np.float64)
    with np.errstate(all="ignore"):
        overall_mean = np.nanmean(numeric, axis=0) if numeric.size else np.zeros(0)
        overall_std = np.nanstd(numeric, axis=0) if numeric.size else np.zeros(0)
    profiles = []
    for c in sorted(int(i) for i in cluster_ids):
        members = clusters == c
        entry: dict[str, Any] = {"cluster": c, "n": int(members.sum()), "share": float(members.mean())}
        if members.any() and numeric.shape[1]:
            with np.errstate(all="ignore"):
                means = np.nanmean(numeric[members], axis=0)
                effect = np.abs(means - overall_mean) / np.where(overall_std > 0, overall_std, np.nan)
            entry["means"] = {name: float(m) for name, m in zip(numeric_names, means, strict=True)}
            order = [i for i in np.argsort(-np.nan_to_num(effect, nan=-1.0)) if np.isfinite(effect[i])]
            entry["top_features"] = [
                {"feature": numeric_names[i], "cluster_mean": float(means[i]), "overall_mean": float(overall_mean[i]),
                 "effect": float((means[i] - overall_mean[i]) / overall_std[i])}
                for i in order[:TOP_FEATURES]
            ]
        if members.any() and categories is not None and len(category_names):
            entry["modes"] = {}
            for j, name in enumerate(category_names):
                counts = Counter(v for v in categories[members, j] if v != "")
                if counts:
                    value, count = counts.most_common(1)[0]
                    entry["modes"][name] = {"value": value, "share": count / int(members.sum())}
        profiles.append(entry)
    return {
        "numeric_features": list(numeric_names),
        "categorical_features": list(category_names),
        "free_text_features": skipped if free_text else [],
        "overall_mean": {n: float(m) for n, m in zip(numeric_names, overall_mean, strict=True)},
        "overall_std": {n: float(s) for n, s in zip(numeric_names, overall_std, strict=True)},
        "clusters": profiles,
    }


def _cell(text: Any) -> str:
    """User text (a column name, a category) as one Markdown table cell: line breaks as spaces, ``|`` escaped."""
    return " ".join(str(text).splitlines()).replace("|", "\\|")


def _distinguishing(entry: Mapping[str, Any]) -> str:
    parts = [f"{_cell(t['feature'])} {t['effect']:+.1f} sd ({_fmt(t['cluster_mean'])} vs {_fmt(t['overall_mean'])})"
             for t in entry.get("top_features", [])]
    return "; ".join(parts) or "n/a"


def markdown(profiles: Mapping[str, Any]) -> list[str]:
    """Report lines: per cluster its distinguishing features (and categorical modes), then the feature means."""
    clusters = profiles["clusters"]
    lines = ["## Cluster profiles", "",
             f"What sets each cluster apart: the {TOP_FEATURES} features with the largest |cluster mean - overall "
             "mean| / overall standard deviation (sd) on the eval split.", ""]
    cats = profiles["categorical_features"]
    header = "| cluster | n | share | distinguishing features |" + "".join(f" most frequent {_cell(c)} |" for c in cats)
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for entry in clusters:
        modes = entry.get("modes", {})
        cells = "".join(f" {_cell(modes[c]['value'])} ({100 * modes[c]['share']:.0f}%) |" if c in modes else " n/a |"
                        for c in cats)
        lines.append(f"| {entry['cluster']} | {entry['n']} | {100 * entry['share']:.1f}% | {_distinguishing(entry)} |"
                     + cells)
    names = profiles["numeric_features"]
    if names:
        effect = {n: max((abs(t["effect"]) for e in clusters for t in e.get("top_features", []) if t["feature"] == n),
                         default=0.0) for n in names}
        shown = sorted(names, key=lambda n: -effect[n])[:MAX_TABLE_FEATURES] if len(names) > MAX_TABLE_FEATURES \
            else names
        lines += ["", "Mean of each numeric feature per cluster against the whole eval split"
                  + (f" (the {MAX_TABLE_FEATURES} most distinguishing of {len(names)} features)"
                     if len(shown) < len(names) else "") + ":", "",
                  "| feature | all |" + "".join(f" {e['cluster']} |" for e in clusters),
                  "|---|---|" + "---|" * len(clusters)]
        for n in shown:
            cells = "".join(f" {_fmt(e.get('means', {}).get(n, float('nan')))} |" for e in clusters)
            lines.append(f"| {_cell(n)} | {_fmt(profiles['overall_mean'][n])} |" + cells)
    if profiles.get("free_text_features"):
        lines += ["", "Free-text columns (a different value in most rows), not profiled: "
                  + ", ".join(profiles["free_text_features"]) + "."]
    return [*lines, ""]
