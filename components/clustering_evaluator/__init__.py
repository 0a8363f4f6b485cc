"""ClusteringEvaluator: bless or reject a clustering model on occupancy, silhouette, ELBO and label metrics."""

from components.clustering_evaluator.component import ClusteringEvaluator

__all__ = ["ClusteringEvaluator"]
