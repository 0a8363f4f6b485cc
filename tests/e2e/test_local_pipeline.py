"""The whole local pipeline on the bundled digits, run three times into one output root (slow: marked e2e).

1. first run: trains, blesses (no baseline yet), pushes version 1 with cluster IDs 0..9, batch-scores every example;
2. second run, unchanged data, another seed: everything up to the Transform is cached, the Trainer aligns the new
   model's cluster IDs to version 1 (the Resolver's latest blessed model), the evaluator reports the agreement,
   transitions and drift against it, and version 2 is pushed;
3. third run without the Resolver (the Kubeflow path) and with thresholds beyond reach: the Trainer aligns to the
   champion record's version 2, the candidate is not blessed, nothing is pushed.
"""

import csv
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from batch_scoring.job import run as batch_score
from model import features
from model.metrics import cluster_accuracy
from pipeline import configs, local_runner, run
from serving import cluster_ids
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
    assert run.main(["--output-root", root, "--seed", "1"]) == 0
    second = _outputs(root)
    assert run.main(["--output-root", root, "--no-resolver", "--thresholds", json.dumps({"min_nmi": 0.999})]) == 0
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
    assert versions(serving)[0] == 1, "the first run pushed version 1 (the second run version 2)"

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
    assert second[("Transform", "TransformGraph")] == ("CACHED", first[("Transform", "TransformGraph")][1])
    assert second[("Trainer", "Model")][0] == "COMPLETE", "another seed, and version 1 to align to"
    metrics = _metrics(second)
    assert metrics["baseline"]["source"] == "resolver"
    assert metrics["baseline"]["model_uri"] == first[("Trainer", "Model")][1]
    assert metrics["decision"]["blessed"] and metrics["decision"]["comparisons"]
    assert versions(configs.output_paths(root).serving) == [1, 2]


def _serve(model_dir: str, records: list[bytes]) -> np.ndarray:
    serve = tf.saved_model.load(model_dir).signatures[features.SERVING_SIGNATURE]
    return serve(**{features.SERVING_INPUT_KEY: tf.constant(records)})[features.CLUSTER].numpy()


def test_two_seeds_keep_cluster_ids_as_well_as_any_relabelling_can(runs):
    root, first, _, _ = runs
    serving = configs.output_paths(root).serving
    _, examples_uri = first[("CsvExampleGen", "Examples")]
    records = [r for split in ("train", "eval") for r in _records(os.path.join(examples_uri, f"Split-{split}", "*"))]
    v1, v2 = (_serve(os.path.join(serving, v), records) for v in ("1", "2"))
    registry = cluster_ids.read_registry(os.path.join(serving, "2"))
    component = {i: k for k, i in enumerate(registry.latest.ids)}
    raw = np.array([component[i] for i in v2])  # version 2's own component numbers: IDs without alignment
    aligned, best = float(np.mean(v1 == v2)), cluster_accuracy(v1, v2)
    print(f"\n[stable IDs, digits, seeds 0 and 1] same cluster: {aligned:.3f} aligned, {float(np.mean(raw == v1)):.3f} "
          f"without alignment, {best:.3f} best relabelling; IDs v2 {list(registry.latest.ids)}")
    assert aligned >= best - 0.01 and aligned >= 0.85
    assert registry.latest.generation == 2 and set(registry.introduced) == set(range(registry.next_id))

    record = read_champion(champion_path(serving))
    assert record.version == 2 and record.cluster_registry["versions"] == {"1": 1, "2": 2}
    assert record.cluster_registry["next_id"] == registry.next_id

    csv_path = glob.glob(os.path.join(configs.output_paths(root).staging, "*.csv"))[0]
    scored = {}
    for version in ("1", "2"):
        out = os.path.join(root, f"scores-v{version}")
        summary = batch_score(["--model", os.path.join(serving, version), "--input", csv_path, "--output", out])
        assert summary["scored"] == 1797
        scored[version] = {}
        for name in glob.glob(os.path.join(out, "scores-*.csv")):
            with open(name, newline="") as f:
                scored[version].update({row["id"]: int(row[features.CLUSTER]) for row in csv.DictReader(f)})
    ids = sorted(scored["1"])
    batch_v1, batch_v2 = (np.array([scored[v][i] for i in ids]) for v in ("1", "2"))
    assert np.sum(batch_v1 == batch_v2) == round(aligned * len(records)), "batch scoring = serving, row for row"
    assert float(np.mean(batch_v1 == batch_v2)) >= cluster_accuracy(batch_v1, batch_v2) - 0.01


def test_second_report_shows_transitions_and_drift(runs):
    _, _, second, _ = runs
    versions_section = _metrics(second)["versions"]
    assert versions_section["agreement"] >= 0.85 and versions_section["agreement"] >= (
        versions_section["best_agreement"] - 0.01)
    assert versions_section["agreement_before_alignment"] <= versions_section["agreement"]
    transitions = versions_section["transitions"]
    counts = np.array(transitions["counts"])
    assert counts.shape == (10, 10) and counts.sum() == versions_section["n_examples"]
    same = sum(counts[r, c] for r, i in enumerate(transitions["champion_ids"])
               for c, j in enumerate(transitions["candidate_ids"]) if i == j)
    assert same / counts.sum() == pytest.approx(versions_section["agreement"])
    drift = versions_section["drift"]
    assert len(drift["features"]) == 64 and drift["max"] < 0.01 and drift["drifted"] == [], "the same data"
    assert "no input feature drifted above 0.1" in versions_section["diagnosis"]
    _, evaluation_uri = second[("ClusteringEvaluator", "ModelEvaluation")]
    with open(os.path.join(evaluation_uri, "report.md")) as f:
        page = f.read()
    assert "## Cluster identity: champion -> candidate" in page and "Transition matrix" in page
    for png in ("transitions.png", "prototypes_by_version.png"):
        assert f"]({png})" in page and os.path.getsize(os.path.join(evaluation_uri, png)) > 0


def test_unreachable_thresholds_reject_the_candidate_and_push_nothing(runs):
    root, _, _, third = runs
    state, model_uri = third[("Trainer", "Model")]
    registry = cluster_ids.read_registry(os.path.join(model_uri, "Format-Serving"))
    assert state == "COMPLETE" and registry.latest.generation == 3, "aligned to the champion record's version 2"
    metrics = _metrics(third)
    assert metrics["baseline"]["source"] == "champion"
    assert not metrics["decision"]["blessed"]
    assert any("nmi" in reason and "0.999" in reason for reason in metrics["decision"]["reasons"]), metrics
    _, blessing_uri = third[("ClusteringEvaluator", "ModelBlessing")]
    assert os.path.exists(os.path.join(blessing_uri, "NOT_BLESSED"))
    _, evaluation_uri = third[("ClusteringEvaluator", "ModelEvaluation")]
    with open(os.path.join(evaluation_uri, "report.md")) as f:
        assert "not blessed" in f.read()
    assert versions(configs.output_paths(root).serving) == [1, 2]
    assert read_champion(champion_path(configs.output_paths(root).serving)).version == 2
