"""The whole local pipeline on the bundled digits, run three times into one output root (slow: marked e2e).

1. first run: trains, blesses (no baseline yet), pushes version 1, batch-scores every example;
2. second run, unchanged data: everything up to the Trainer is cached, the evaluator compares the candidate
   against the model blessed by the first run (Resolver), and nothing new is copied to serving;
3. third run with thresholds beyond reach: the candidate is not blessed, nothing is pushed, the report says why.
"""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from model import features
from pipeline import configs, local_runner, run
from serving.champion import champion_path, read_champion
from serving.store import versions

pytestmark = pytest.mark.e2e


def _outputs(root: str) -> dict[tuple[str, str], tuple[str, str]]:
    rows = local_runner.latest_run_artifacts(configs.output_paths(root).metadata, configs.PIPELINE_NAME)
    return {(component, kind): (state, uri) for component, kind, state, uri in rows}


def _records(pattern: str) -> list[bytes]:
    files = sorted(glob.glob(pattern))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _metrics(outputs) -> dict:
    _, uri = outputs[("ClusteringEvaluator", "ModelEvaluation")]
    with open(os.path.join(uri, "metrics.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("outputs"))
    assert run.main(["--output-root", root]) == 0
    first = _outputs(root)
    assert run.main(["--output-root", root]) == 0
    second = _outputs(root)
    assert run.main(["--output-root", root, "--thresholds", json.dumps({"min_nmi": 0.999})]) == 0
    third = _outputs(root)
    return root, first, second, third


def test_every_component_ran_and_wrote_under_the_output_root(runs):
    root, first, _, _ = runs
    components = {component for component, _ in first}
    assert {"CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomalyGate", "Transform",
            "Trainer", "ClusteringEvaluator", "Pusher", "BulkInferrer"} <= components
    for state, uri in first.values():
        assert state == "COMPLETE"
        assert uri.startswith(root) and os.path.exists(uri), uri


def test_first_run_blesses_and_pushes_a_model_that_serves_raw_examples(runs):
    root, first, _, _ = runs
    serving = configs.output_paths(root).serving
    decision = _metrics(first)["decision"]
    assert decision["blessed"] and not decision["has_baseline"], decision
    assert versions(serving) == [1]
    assert read_champion(champion_path(serving)).version == 1

    _, examples_uri = first[("CsvExampleGen", "Examples")]
    raw = _records(os.path.join(examples_uri, "Split-eval", "*"))
    loaded = tf.saved_model.load(os.path.join(serving, "1"))
    outputs = loaded.signatures[features.SERVING_SIGNATURE](**{features.SERVING_INPUT_KEY: tf.constant(raw)})
    clusters = outputs[features.CLUSTER].numpy()
    assert outputs[features.CLUSTER].dtype == tf.int64 and clusters.shape == (len(raw),)
    probabilities = outputs[features.CLUSTER_PROBABILITIES].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), clusters)
    assert len(np.unique(clusters)) >= 8, "a blessed model uses (nearly) every cluster on the digits"


def test_batch_scoring_has_exactly_one_row_per_input_example(runs):
    _, first, _, _ = runs
    _, examples_uri = first[("CsvExampleGen", "Examples")]
    _, scored_uri = first[("BulkInferrer", "Examples")]
    for split in ("train", "eval"):
        inputs = _records(os.path.join(examples_uri, f"Split-{split}", "*"))
        scored = [tf.train.Example.FromString(r) for r in _records(os.path.join(scored_uri, f"Split-{split}", "*"))]
        assert len(scored) == len(inputs) > 0
        assert sorted(e.features.feature[features.ID_KEY].int64_list.value[0] for e in scored) == sorted(
            tf.train.Example.FromString(r).features.feature[features.ID_KEY].int64_list.value[0] for r in inputs)
        for example in scored[:20]:
            feature = example.features.feature
            assert len(feature[features.CLUSTER].int64_list.value) == 1
            assert len(feature[features.CLUSTER_PROBABILITIES].float_list.value) == 10
    total = sum(len(_records(os.path.join(scored_uri, f"Split-{s}", "*"))) for s in ("train", "eval"))
    assert total == 1797


def test_second_run_evaluates_against_the_first_blessed_model(runs):
    root, first, second, _ = runs
    assert second[("Trainer", "Model")] == ("CACHED", first[("Trainer", "Model")][1])
    assert second[("ClusteringEvaluator", "ModelBlessing")][0] == "COMPLETE"
    metrics = _metrics(second)
    assert metrics["baseline"]["source"] == "resolver"
    assert metrics["baseline"]["model_uri"] == first[("Trainer", "Model")][1]
    assert metrics["decision"]["blessed"] and metrics["decision"]["comparisons"]
    assert versions(configs.output_paths(root).serving) == [1], "the serving model is not copied again"


def test_unreachable_thresholds_reject_the_candidate_and_push_nothing(runs):
    root, _, _, third = runs
    metrics = _metrics(third)
    assert not metrics["decision"]["blessed"]
    assert any("nmi" in reason and "0.999" in reason for reason in metrics["decision"]["reasons"]), metrics
    _, blessing_uri = third[("ClusteringEvaluator", "ModelBlessing")]
    assert os.path.exists(os.path.join(blessing_uri, "NOT_BLESSED"))
    _, evaluation_uri = third[("ClusteringEvaluator", "ModelEvaluation")]
    with open(os.path.join(evaluation_uri, "report.md")) as f:
        assert "not blessed" in f.read()
    assert versions(configs.output_paths(root).serving) == [1]
    assert read_champion(champion_path(configs.output_paths(root).serving)).version == 1
