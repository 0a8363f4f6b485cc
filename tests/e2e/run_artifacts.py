"""What a local pipeline run left behind, for the end-to-end tests: its artifacts, records and evaluation."""

import glob
import json
import os

import tensorflow as tf

from components.clustering_evaluator.constants import METRICS_FILE
from pipeline import configs, local_runner


def outputs(root: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(component, artifact type) -> (execution state, artifact URI) of the latest run under ``root``."""
    rows = local_runner.latest_run_outputs(configs.output_paths(root).metadata, configs.PIPELINE_NAME)
    return {(o.component, o.kind): (o.state, o.uri) for o in rows}


def records(pattern: str) -> list[bytes]:
    """Every record of the GZIP TFRecord files matching ``pattern``, in file order."""
    files = sorted(glob.glob(pattern))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def metrics(run_outputs: dict) -> dict:
    """The evaluator's metrics.json of a run (`outputs`)."""
    _, uri = run_outputs[("ClusteringEvaluator", "ModelEvaluation")]
    with open(os.path.join(uri, METRICS_FILE)) as f:
        return json.load(f)
