"""The whole local pipeline on the bundled digits, the default `make run` (slow: marked e2e): every component runs,
the model is blessed (no baseline yet), pushed as version 1 and batch-scores every example.

Later versions (cluster-ID alignment, transitions, drift, a refused candidate) are tested in test_model_versions.py
on a table whose clusters every seed finds: two digits seeds can disagree on a third of the images (README,
"Seed stability"), and the evaluator then rightly refuses the second model, so the digits cannot test the mechanics.
"""

import os

import numpy as np
import pytest
import run_artifacts  # tests/e2e/run_artifacts.py
import tensorflow as tf

from model import features
from pipeline import configs, run
from serving.store import versions

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("outputs"))
    assert run.main(["--output-root", root]) == 0
    return root, run_artifacts.outputs(root)


def test_every_component_ran_and_wrote_under_the_output_root(runs):
    root, first = runs
    components = {component for component, _ in first}
    assert {"CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomalyGate", "Transform",
            "Trainer", "ClusteringEvaluator", "Pusher", "BulkInferrer"} <= components
    for state, uri in first.values():
        assert state == "COMPLETE"
        assert uri.startswith(root) and os.path.exists(uri), uri


def test_first_run_blesses_and_pushes_a_model_that_serves_raw_examples(runs):
    root, first = runs
    serving = configs.output_paths(root).serving
    decision = run_artifacts.metrics(first)["decision"]
    assert decision["blessed"] and not decision["has_baseline"], decision
    assert versions(serving) == [1], "the first run pushed version 1"

    _, examples_uri = first[("CsvExampleGen", "Examples")]
    raw = run_artifacts.records(os.path.join(examples_uri, "Split-eval", "*"))
    loaded = tf.saved_model.load(os.path.join(serving, "1"))
    outputs = loaded.signatures[features.SERVING_SIGNATURE](**{features.SERVING_INPUT_KEY: tf.constant(raw)})
    clusters = outputs[features.CLUSTER].numpy()
    assert outputs[features.CLUSTER].dtype == tf.int64 and clusters.shape == (len(raw),)
    probabilities = outputs[features.CLUSTER_PROBABILITIES].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), clusters)
    assert len(np.unique(clusters)) >= 8, "a blessed model uses (nearly) every cluster on the digits"


def test_batch_scoring_has_exactly_one_row_per_input_example(runs):
    _, first = runs
    _, examples_uri = first[("CsvExampleGen", "Examples")]
    _, scored_uri = first[("BulkInferrer", "Examples")]
    total = 0
    for split in ("train", "eval"):
        inputs = run_artifacts.records(os.path.join(examples_uri, f"Split-{split}", "*"))
        scored = [tf.train.Example.FromString(r)
                  for r in run_artifacts.records(os.path.join(scored_uri, f"Split-{split}", "*"))]
        assert len(scored) == len(inputs) > 0
        total += len(scored)
        assert sorted(e.features.feature[features.ID_KEY].int64_list.value[0] for e in scored) == sorted(
            tf.train.Example.FromString(r).features.feature[features.ID_KEY].int64_list.value[0] for r in inputs)
        for example in scored[:20]:
            feature = example.features.feature
            assert len(feature[features.CLUSTER].int64_list.value) == 1
            assert len(feature[features.CLUSTER_PROBABILITIES].float_list.value) == 10
    assert total == 1797
