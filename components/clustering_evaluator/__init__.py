"""ClusteringEvaluator: bless or reject a clustering model on occupancy, silhouette, ELBO and label metrics.

`ClusteringEvaluator` is imported on first use, so that the import-light `bless_rules` module (thresholds, tolerances
and their defaults, read by the command-line tools) can be imported without loading TFX and TensorFlow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClusteringEvaluator"]


def __getattr__(name: str) -> Any:
    if name == "ClusteringEvaluator":
        from components.clustering_evaluator.component import ClusteringEvaluator

        return ClusteringEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
