"""Version-to-version report: how the candidate's clusters relate to the champion's on the same eval examples.

Both models already emit stable cluster IDs (the Trainer aligned the candidate to the champion), so the share of
examples keeping their ID is read directly; beside it, the agreement before alignment (the candidate's own component
numbers) and the best any relabelling reaches (Hungarian on the two outputs). Then the transition matrix champion
ID -> candidate ID, the share of each ID in both, new and retired IDs, and the input drift between the two models'
training data, so that a low agreement can be told apart: the data changed, or the model is unstable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from components.clustering_evaluator import report, scoring
from model import features
from model.metrics import cluster_accuracy, silhouette_in_spaces
from serving.cluster_ids import Registry, co_assignment

TRANSITIONS_PNG = "transitions.png"
PROTOTYPES_PNG = "prototypes_by_version.png"


def paired(candidate: Mapping[str, np.ndarray], champion: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays that put both models' scores in the same example order (by record key)."""
    a = np.argsort(candidate[scoring.RECORD_KEY], kind="stable")
    b = np.argsort(champion[scoring.RECORD_KEY], kind="stable")
    if not np.array_equal(candidate[scoring.RECORD_KEY][a], champion[scoring.RECORD_KEY][b]):
        raise ValueError("the candidate and the champion were scored on different examples")
    return a, b


def compare(candidate: Mapping[str, np.ndarray], champion: Mapping[str, np.ndarray], candidate_registry: Registry,
            champion_registry: Registry, drift: Mapping[str, Any], agreement_threshold: float | None,
            waived: bool = False) -> dict[str, Any]:
    """The ``versions`` section of metrics.json (JSON-ready); ``waived``: a re-segmentation was accepted."""
    a, b = paired(candidate, champion)
    new, old = candidate[features.CLUSTER][a], champion[features.CLUSTER][b]
    to_component = {i: k for k, i in enumerate(candidate_registry.latest.ids)}
    raw = np.array([to_component[int(i)] for i in new])
    new_ids, old_ids = sorted(candidate_registry.latest.ids), sorted(champion_registry.latest.ids)
    by_component = co_assignment(old, raw, old_ids, len(to_component))  # columns: candidate components
    counts = by_component[:, [to_component[i] for i in new_ids]]
    n = max(new.size, 1)
    shares = {int(i): {"champion": float(np.mean(old == i)) if i in old_ids else None,
                       "candidate": float(np.mean(new == i)) if i in new_ids else None}
              for i in sorted({*new_ids, *old_ids})}
    for share in shares.values():
        share["change"] = (share["candidate"] or 0.0) - (share["champion"] or 0.0)
    agreement = float(np.sum(new == old) / n)
    section = {
        "n_examples": int(new.size),
        "agreement": agreement,
        "agreement_before_alignment": float(np.sum(raw == old) / n),
        "best_agreement": cluster_accuracy(old, new),  # Hungarian: the best any relabelling reaches
        "champion_generation": champion_registry.latest.generation,
        "candidate_generation": candidate_registry.latest.generation,
        "transitions": {"champion_ids": old_ids, "candidate_ids": new_ids, "counts": counts.tolist()},
        "shares": {str(i): s for i, s in shares.items()},
        "new_ids": [i for i in new_ids if i not in old_ids],
        "retired_ids": [i for i in old_ids if i not in new_ids],
        "drift": dict(drift),
        # each model's own-space silhouette rates it where it was trained to separate its clusters: two models with the
        # same clusters differed by 0.08 that way; in both spaces the same clusters score the same
        features.SILHOUETTE_BOTH: {who: silhouette_in_spaces(
            (candidate[features.LATENT_MEAN][a], champion[features.LATENT_MEAN][b]), clusters)
            for who, clusters in (("candidate", new), ("champion", old))},
    }
    section["diagnosis"] = diagnosis(agreement, agreement_threshold, drift, waived)
    return section


def diagnosis(agreement: float, threshold: float | None, drift: Mapping[str, Any], waived: bool = False) -> str:
    """One sentence: is the agreement enough; if not, did the data change or do the two models segment the same data
    differently, and what to do when the candidate's clusters are the ones to keep (unless ``waived`` already)."""
    shown = f"{agreement:.1%} of eval examples keep their cluster ID"
    if "drifted" not in drift:
        detail, cause = f"input drift unknown: {drift.get('note', 'no statistics')}", "the cause is unknown"
    elif drift["drifted"] or drift.get("added") or drift.get("removed"):
        details = ([f"new input features: {', '.join(drift['added'])}"] if drift.get("added") else []) + (
            [f"input features gone: {', '.join(drift['removed'])}"] if drift.get("removed") else [])
        if drift["drifted"]:
            details.append(f"{len(drift['drifted'])} input features drifted above {drift['threshold']:g}, largest "
                           f"{drift['max']:.3f} on {drift['max_feature']}")
        detail, cause = "; ".join(details), "the data changed"
    else:
        detail = f"no input feature drifted above {drift['threshold']:g}, largest {drift['max']:.3f}"
        cause = "the candidate and the champion segment the same data differently, so one of them is unstable"
    if threshold is None or agreement >= threshold:
        return f"{shown}; {detail}"
    if waived:
        return f"{shown}, below {threshold:.0%}, accepted as a re-segmentation: {cause} ({detail})"
    return (f"{shown}, below {threshold:.0%}: {cause} ({detail}); if the candidate's clusters are the ones to keep, "
            "re-run with --accept-resegmentation")


def write_plots(output_dir: str, section: Mapping[str, Any], candidate: Mapping[str, np.ndarray],
                champion: Mapping[str, np.ndarray], image_shape: Sequence[int] | None) -> list[tuple[str, str]]:
    """The transition matrix and, for images, the prototypes of each ID in both versions side by side."""
    transitions = section["transitions"]
    counts = np.array(transitions["counts"], dtype=float)
    fig = Figure(figsize=(1 + 0.5 * max(len(transitions["candidate_ids"]), 4),
                          1 + 0.45 * max(len(transitions["champion_ids"]), 4)), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for (r, c), value in np.ndenumerate(counts):
        if value:
            ax.text(c, r, int(value), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(transitions["candidate_ids"])), transitions["candidate_ids"])
    ax.set_yticks(range(len(transitions["champion_ids"])), transitions["champion_ids"])
    ax.set(xlabel="candidate cluster ID", ylabel="champion cluster ID",
           title=f"Champion -> candidate ({section['agreement']:.1%} keep their ID)")
    report.save_png(fig, os.path.join(output_dir, TRANSITIONS_PNG))
    plots = [("Champion -> candidate transitions", TRANSITIONS_PNG)]
    if image_shape is None or scoring.INPUTS not in candidate:
        return plots
    a, b = paired(candidate, champion)
    inputs, new, old = candidate[scoring.INPUTS][a], candidate[features.CLUSTER][a], champion[features.CLUSTER][b]
    ids = [int(i) for i in section["shares"]]
    fig = Figure(figsize=(1.1 * len(ids) + 1, 3), layout="constrained")
    for col, i in enumerate(ids):
        for row, (name, clusters) in enumerate((("champion", old), ("candidate", new))):
            report.draw_prototype(fig.add_subplot(2, len(ids), row * len(ids) + col + 1), inputs[clusters == i],
                                  image_shape, f"{name} {i}", 6)
    fig.suptitle("Prototypes per cluster ID: champion (top) and candidate (bottom)")
    report.save_png(fig, os.path.join(output_dir, PROTOTYPES_PNG))
    return [*plots, ("Prototypes by version", PROTOTYPES_PNG)]


def _shown(value: float | None, form: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, form)


def _pct(value: float | None) -> str:
    return _shown(value, ".1%")


def markdown(section: Mapping[str, Any] | None, note: str, waived: bool) -> list[str]:
    """Report lines: agreement (aligned, before alignment, best possible), diagnosis, IDs, shares, drift."""
    lines = ["## Cluster identity: champion -> candidate", ""]
    if section is None:
        return [*lines, f"- {note}", ""]
    lines += [f"**{section['diagnosis']}**", ""]
    if waived:
        lines += ["A deliberate re-segmentation was accepted (`--accept-resegmentation`): the agreement with the "
                  "champion does not decide the blessing.", ""]
    lines += [
        f"- same cluster ID as the champion: {_pct(section['agreement'])} of {section['n_examples']} eval examples "
        f"(before alignment {_pct(section['agreement_before_alignment'])}; best any relabelling reaches "
        f"{_pct(section['best_agreement'])})",
        f"- new IDs: {section['new_ids'] or 'none'}; retired IDs: {section['retired_ids'] or 'none'}",
        "- silhouette of each model's clusters in both latent spaces: candidate {candidate}, champion {champion}"
        .format(**{who: _shown(value, ".3f") for who, value in section[features.SILHOUETTE_BOTH].items()}),
        "",
        "| cluster ID | champion share | candidate share | change |",
        "|---|---|---|---|",
    ]
    for i, share in section["shares"].items():
        lines.append(f"| {i} | {_pct(share['champion'])} | {_pct(share['candidate'])} | {share['change']:+.1%} |")
    transitions = section["transitions"]
    lines += ["", "Transition matrix (rows: champion ID, columns: candidate ID, eval examples):", "",
              "| champion \\ candidate | " + " | ".join(map(str, transitions["candidate_ids"])) + " |",
              "|---|" + "---|" * len(transitions["candidate_ids"])]
    for i, row in zip(transitions["champion_ids"], transitions["counts"], strict=True):
        lines.append(f"| {i} | " + " | ".join(map(str, row)) + " |")
    drift = section["drift"]
    lines += ["", "Input drift, this run's training data vs the champion's (TFDV: Jensen-Shannon divergence for "
              "numeric features, L-infinity for categorical):", ""]
    if "features" in drift:
        top = sorted(((name, v) for name, v in drift["features"].items() if round(v["value"], 3) > 0),
                     key=lambda item: -item[1]["value"])[:5]  # features that did not move (0.000) are not listed
        lines += ["- largest: " + (", ".join(f"{name} {v['value']:.3f} ({v['measure']})" for name, v in top)
                                   or "every feature 0.000 (no change)"),
                  f"- above {drift['threshold']:g}: {len(drift['drifted'])} of {len(drift['features'])} features"]
        lines += [f"- {what}: {', '.join(drift[key])} ({why}, so not measured)"
                  for key, what, why in (("added", "new features", "not in the champion's training data"),
                                         ("removed", "features gone", "not in this run's training data"))
                  if drift.get(key)] + [""]
    else:
        lines += [f"- {drift.get('note')}", ""]
    return lines
