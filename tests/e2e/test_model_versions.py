"""Successive model versions through the local pipeline, three runs into one output root (slow: marked e2e).

1. first run: trains, blesses, pushes version 1 with cluster IDs 0..K-1;
2. second run, unchanged data, another seed: everything up to the Transform is cached, the Trainer aligns the new
   model's cluster IDs to version 1 (the Resolver's latest blessed model), the evaluator reports the agreement,
   transitions and drift against it, and version 2 is pushed;
3. third run without the Resolver (the Kubeflow path) and a threshold beyond reach (the smallest of 4 clusters
   holding half the examples): the Trainer aligns to the
   champion record's version 2, the candidate is not blessed, nothing is pushed.

The data is a table of four well-separated groups of unequal size that every seed finds, so the two seeds' models
partition it alike under different component numbers: what is tested is the pipeline's handling of versions, not
the model's seed stability (bench/ and the README's benchmark measure that).
"""

import csv
import glob
import json
import os

import numpy as np
import pytest
import run_artifacts  # tests/e2e/run_artifacts.py
import tensorflow as tf

from batch_scoring.job import run as batch_score
from components.clustering_evaluator.bless_rules import METRICS
from model import features
from model.metrics import cluster_accuracy
from pipeline import configs, run
from serving import cluster_ids
from serving.champion import champion_path, read_champion
from serving.store import versions

pytestmark = pytest.mark.e2e

SIZES = (240, 160, 120, 80)
COLUMNS = ("a", "b", "c", "d", "e")
EPOCHS = ["--pretrain-epochs", "40", "--epochs", "20"]


def _groups_table(path: str, seed: int = 0) -> None:
    """Four groups of unequal size, 8 standard deviations apart in five numeric columns, with an id and a label."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, size=(len(SIZES), len(COLUMNS)))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", *COLUMNS])
        rows = [(g, centres[g] + rng.normal(size=len(COLUMNS))) for g, size in enumerate(SIZES) for _ in range(size)]
        for i in rng.permutation(len(rows)):
            group, values = rows[i]
            writer.writerow([f"r{i}", group, *(f"{v:.4f}" for v in values)])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    data = str(tmp_path_factory.mktemp("data") / "groups.csv")
    _groups_table(data)
    root = str(tmp_path_factory.mktemp("outputs"))
    common = ["--data", data, "--output-root", root, "--clusters", str(len(SIZES)), *EPOCHS]
    assert run.main(common) == 0
    first = run_artifacts.outputs(root)
    assert run.main([*common, "--seed", "1", "--fail-if-not-blessed"]) == 0  # blessed: the flag changes nothing
    second = run_artifacts.outputs(root)
    unreachable = ["--thresholds", json.dumps({"min_smallest_cluster_share": 0.5})]
    assert run.main([*common, "--no-resolver", *unreachable, "--fail-if-not-blessed"]) == run.EXIT_NOT_BLESSED
    third = run_artifacts.outputs(root)
    return root, first, second, third


def test_first_run_finds_the_groups_and_pushes_version_1(runs):
    root, first, _, _ = runs
    metrics = run_artifacts.metrics(first)
    assert metrics["decision"]["blessed"] and not metrics["decision"]["has_baseline"], metrics["decision"]
    assert metrics["candidate"]["metrics"]["acc"] > 0.95, metrics["candidate"]["metrics"]
    assert versions(configs.output_paths(root).serving) == [1, 2], "the first run pushed version 1, the second 2"


def test_second_run_evaluates_against_the_first_blessed_model(runs):
    root, first, second, _ = runs
    assert second[("Transform", "TransformGraph")] == ("CACHED", first[("Transform", "TransformGraph")][1])
    assert second[("Trainer", "Model")][0] == "COMPLETE", "another seed, and version 1 to align to"
    metrics = run_artifacts.metrics(second)
    assert metrics["baseline"]["source"] == "resolver"
    assert metrics["baseline"]["model_uri"] == first[("Trainer", "Model")][1]
    assert metrics["decision"]["blessed"] and metrics["decision"]["comparisons"], metrics["decision"]
    assert versions(configs.output_paths(root).serving) == [1, 2]


def _serve(model_dir: str, records: list[bytes]) -> np.ndarray:
    serve = tf.saved_model.load(model_dir).signatures[features.SERVING_SIGNATURE]
    return serve(**{features.SERVING_INPUT_KEY: tf.constant(records)})[features.CLUSTER].numpy()


def test_two_seeds_keep_cluster_ids_as_well_as_any_relabelling_can(runs):
    root, first, _, _ = runs
    serving = configs.output_paths(root).serving
    _, examples_uri = first[("CsvExampleGen", "Examples")]
    records = [r for split in ("train", "eval")
               for r in run_artifacts.records(os.path.join(examples_uri, f"Split-{split}", "*"))]
    v1, v2 = (_serve(os.path.join(serving, v), records) for v in ("1", "2"))
    registry = cluster_ids.read_registry(os.path.join(serving, "2"))
    component = {i: k for k, i in enumerate(registry.latest.ids)}
    raw = np.array([component[i] for i in v2])  # version 2's own component numbers: IDs without alignment
    aligned, best = float(np.mean(v1 == v2)), cluster_accuracy(v1, v2)
    print(f"\n[stable IDs, four groups, seeds 0 and 1] same cluster: {aligned:.3f} aligned, "
          f"{float(np.mean(raw == v1)):.3f} without alignment, {best:.3f} best relabelling; "
          f"IDs v2 {list(registry.latest.ids)}")
    assert aligned >= best - 0.01 and aligned >= 0.95
    assert registry.latest.generation == 2 and set(registry.introduced) == set(range(registry.next_id))

    record = read_champion(champion_path(serving))
    assert record.version == 2 and record.cluster_registry["versions"] == {"1": 1, "2": 2}
    assert record.cluster_registry["next_id"] == registry.next_id

    csv_path = glob.glob(os.path.join(configs.output_paths(root).staging, "*.csv"))[0]
    scored = {}
    for version in ("1", "2"):
        out = os.path.join(root, f"scores-v{version}")
        summary = batch_score(["--model", os.path.join(serving, version), "--input", csv_path, "--output", out])
        assert summary["scored"] == sum(SIZES)
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
    versions_section = run_artifacts.metrics(second)["versions"]
    assert versions_section["agreement"] >= 0.95 and versions_section["agreement"] >= (
        versions_section["best_agreement"] - 0.01)
    assert versions_section["agreement_before_alignment"] <= versions_section["agreement"]
    transitions = versions_section["transitions"]
    counts = np.array(transitions["counts"])
    assert counts.shape == (len(SIZES), len(SIZES)) and counts.sum() == versions_section["n_examples"]
    same = sum(counts[r, c] for r, i in enumerate(transitions["champion_ids"])
               for c, j in enumerate(transitions["candidate_ids"]) if i == j)
    assert same / counts.sum() == pytest.approx(versions_section["agreement"])
    drift = versions_section["drift"]
    assert set(drift["features"]) == set(COLUMNS), drift
    assert drift["max"] < 0.01 and drift["drifted"] == [], "the same data"
    assert "no input feature drifted above 0.1" in versions_section["diagnosis"]
    _, evaluation_uri = second[("ClusteringEvaluator", "ModelEvaluation")]
    with open(os.path.join(evaluation_uri, "report.md")) as f:
        page = f.read()
    assert "## Cluster identity: champion -> candidate" in page and "Transition matrix" in page
    assert "](transitions.png)" in page and os.path.getsize(os.path.join(evaluation_uri, "transitions.png")) > 0
    assert "prototypes_by_version.png" not in page, "image prototypes only for images"


def test_unreachable_thresholds_reject_the_candidate_and_push_nothing(runs):
    root, _, _, third = runs
    state, model_uri = third[("Trainer", "Model")]
    registry = cluster_ids.read_registry(os.path.join(model_uri, "Format-Serving"))
    assert state == "COMPLETE" and registry.latest.generation == 3, "aligned to the champion record's version 2"
    metrics = run_artifacts.metrics(third)
    assert metrics["baseline"]["source"] == "champion"
    assert not metrics["decision"]["blessed"]
    unreachable = f"smallest cluster {METRICS['min_share'].format(metrics['candidate']['metrics']['min_share'])} < "
    assert unreachable + METRICS["min_share"].format(0.5) in metrics["decision"]["reasons"], metrics["decision"]
    _, blessing_uri = third[("ClusteringEvaluator", "ModelBlessing")]
    assert os.path.exists(os.path.join(blessing_uri, "NOT_BLESSED"))
    _, evaluation_uri = third[("ClusteringEvaluator", "ModelEvaluation")]
    with open(os.path.join(evaluation_uri, "report.md")) as f:
        assert "not blessed" in f.read()
    assert versions(configs.output_paths(root).serving) == [1, 2]
    assert read_champion(champion_path(configs.output_paths(root).serving)).version == 2
