"""Stable cluster IDs across model versions: Hungarian alignment to the champion and the cluster registry.

Every model carries its registry in ``<SavedModel>/assets.extra/cluster_registry.json`` (so the Resolver's baseline
and the champion record's serving path are read the same way): every ID ever issued, the generation (position in
the line of champions, 1 for the first model) that introduced it, and per generation the stable ID of each model
component, its share of the eval examples and its prototype (mean model input). The first model's IDs are 0..K-1.
A candidate's component keeps the champion ID it is matched to by Hungarian assignment on the co-assignment counts
of both models on the same examples, when the match overlaps enough (Jaccard >= ``min_overlap``); any other
component gets a new ID, never used before. IDs not in the latest generation are retired and never come back.

The champion record keeps the registry of the pushed model too (``cluster_registry``), and it outlives a rolled-back
version: :meth:`Registry.remembering` folds it in, so an ID issued by a version that was deleted is not issued again.

The alignment is numpy/scipy; the registry files are read and written with ``tf.io.gfile`` (local, gs://, s3://).
The Trainer, the evaluator, the pusher and the tests share this module.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from scipy.optimize import linear_sum_assignment

REGISTRY_FILE = "cluster_registry.json"
ASSETS_EXTRA = "assets.extra"  # SavedModel directory for files TensorFlow does not read
# A matched pair keeps the champion's ID when its members overlap on at least half of their union (Jaccard).
MIN_OVERLAP = 0.5
PROTOTYPE_DECIMALS = 4


def registry_path(saved_model_dir: str) -> str:
    """Where a SavedModel keeps its cluster registry."""
    return os.path.join(saved_model_dir, ASSETS_EXTRA, REGISTRY_FILE)


@dataclasses.dataclass(frozen=True)
class Generation:
    """One model in the line of champions: ``ids[k]`` is the stable ID of its component k; ``shares`` and
    ``prototypes`` (mean model input of the members) per stable ID, on the Trainer's eval examples."""

    generation: int
    model_uri: str
    ids: tuple[int, ...]
    shares: dict[int, float]
    prototypes: dict[int, tuple[float, ...]]


@dataclasses.dataclass(frozen=True)
class Registry:
    """All IDs ever issued (``0 .. next_id - 1``), the generation that introduced each, and every generation."""

    next_id: int
    introduced: dict[int, int]
    generations: tuple[Generation, ...]

    @property
    def latest(self) -> Generation:
        return self.generations[-1]

    def remembering(self, known: Registry | None) -> Registry:
        """This registry, with ``next_id`` never below ``known``'s and every ID ``known`` lists as introduced: IDs
        issued by a version that is no longer served (rolled back, or an older model pushed again) stay issued."""
        if known is None:
            return self
        return dataclasses.replace(self, next_id=max(self.next_id, known.next_id),
                                   introduced={**known.introduced, **self.introduced})

    @property
    def retired(self) -> tuple[int, ...]:
        """IDs issued once and not used by the latest generation: never issued again."""
        return tuple(i for i in range(self.next_id) if i not in self.latest.ids)

    def to_json(self) -> dict[str, Any]:
        return {
            "next_id": self.next_id,
            "introduced": {str(i): g for i, g in sorted(self.introduced.items())},
            "generations": [{"generation": g.generation, "model_uri": g.model_uri, "ids": list(g.ids),
                             "shares": {str(i): s for i, s in sorted(g.shares.items())},
                             "prototypes": {str(i): list(p) for i, p in sorted(g.prototypes.items())}}
                            for g in self.generations],
        }

    @classmethod
    def from_json(cls, content: dict[str, Any]) -> Registry:
        generations = tuple(Generation(
            generation=int(g["generation"]), model_uri=str(g["model_uri"]), ids=tuple(int(i) for i in g["ids"]),
            shares={int(i): float(s) for i, s in g["shares"].items()},
            prototypes={int(i): tuple(float(v) for v in p) for i, p in g["prototypes"].items()},
        ) for g in content["generations"])
        if not generations:
            raise ValueError("a cluster registry without any generation")
        return cls(next_id=int(content["next_id"]),
                   introduced={int(i): int(g) for i, g in content["introduced"].items()}, generations=generations)


def for_unregistered_model(model_uri: str, n_clusters: int) -> Registry:
    """The registry of a model exported before models carried one: its component k has ID k."""
    ids = tuple(range(n_clusters))
    return Registry(next_id=n_clusters, introduced={i: 1 for i in ids},
                    generations=(Generation(1, model_uri, ids, {}, {}),))


def co_assignment(champion: np.ndarray, candidate: np.ndarray, champion_ids: Sequence[int], k: int) -> np.ndarray:
    """Counts [len(champion_ids), k]: examples the champion gave stable ID ``champion_ids[i]`` and the candidate put
    in its component j."""
    champion, candidate = np.asarray(champion).ravel(), np.asarray(candidate).ravel()
    if champion.shape != candidate.shape:
        raise ValueError(f"champion and candidate scored different examples: {champion.size} vs {candidate.size}")
    row = {int(i): r for r, i in enumerate(champion_ids)}
    unknown = sorted(set(np.unique(champion).tolist()) - set(row))
    if unknown:
        raise ValueError(f"the champion emitted cluster IDs {unknown} that its registry does not list")
    counts = np.zeros((len(champion_ids), k), dtype=np.int64)
    np.add.at(counts, (np.array([row[int(c)] for c in champion], dtype=np.int64), candidate.astype(np.int64)), 1)
    return counts


def match(counts: np.ndarray, champion_ids: Sequence[int], min_overlap: float = MIN_OVERLAP) -> dict[int, int]:
    """{candidate component: champion ID} by Hungarian assignment on the co-assignment counts, keeping only pairs
    whose members overlap on at least ``min_overlap`` of their union (Jaccard)."""
    rows, cols = linear_sum_assignment(counts, maximize=True)
    champion_sizes, candidate_sizes = counts.sum(axis=1), counts.sum(axis=0)
    matches = {}
    for r, c in zip(rows, cols, strict=True):
        union = champion_sizes[r] + candidate_sizes[c] - counts[r, c]
        if union > 0 and counts[r, c] / union >= min_overlap:
            matches[int(c)] = int(champion_ids[r])
    return matches


def assign_ids(registry: Registry | None, k: int, matches: dict[int, int]) -> tuple[int, ...]:
    """The stable ID of each of the candidate's ``k`` components: its match, else the next never-issued ID.

    Without a registry (the first model) the IDs are 0..k-1.
    """
    if registry is None:
        return tuple(range(k))
    issued = registry.next_id
    ids = []
    for component in range(k):
        if component in matches:
            ids.append(matches[component])
        else:
            ids.append(issued)
            issued += 1
    return tuple(ids)


def extend(registry: Registry | None, ids: Sequence[int], model_uri: str, components: np.ndarray,
           model_inputs: np.ndarray) -> Registry:
    """The registry with one more generation: the candidate's ``ids`` (component k -> ID), with the share and the
    prototype of each ID from its ``components`` (component per eval example) and ``model_inputs`` [N, F]."""
    ids = tuple(int(i) for i in ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"cluster IDs {list(ids)} are not distinct")
    introduced = dict(registry.introduced) if registry else {}
    generation = (registry.latest.generation + 1) if registry else 1
    next_id = registry.next_id if registry else 0
    current = set(registry.latest.ids) if registry else set()
    for i in ids:
        if i < next_id and i not in current:
            raise ValueError(f"cluster ID {i} is neither one of the champion's IDs {sorted(current)} nor a new one "
                             f"(>= {next_id}): a retired or deleted version's ID is never issued again")
        if i >= next_id:
            introduced[i] = generation
    components = np.asarray(components).ravel()
    shares, prototypes = {}, {}
    for k, i in enumerate(ids):
        members = components == k
        shares[i] = float(members.mean()) if components.size else 0.0
        if members.any():
            prototypes[i] = tuple(np.round(model_inputs[members].mean(axis=0), PROTOTYPE_DECIMALS).tolist())
    new = Generation(generation, model_uri, ids, shares, prototypes)
    return Registry(next_id=max([next_id, *(i + 1 for i in ids)]), introduced=introduced,
                    generations=(*(registry.generations if registry else ()), new))


def read_registry(saved_model_dir: str) -> Registry | None:
    """The registry a SavedModel carries, or None for a model exported before models carried one."""
    path = registry_path(saved_model_dir)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        try:
            return Registry.from_json(json.load(f))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"cluster registry {path} is unusable ({err}); re-export the model") from None


def write_registry(saved_model_dir: str, registry: Registry) -> None:
    """Store ``registry`` in the SavedModel directory (``assets.extra``)."""
    path = registry_path(saved_model_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(registry.to_json(), sort_keys=True))
