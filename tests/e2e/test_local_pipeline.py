"""The whole local pipeline on the bundled digits, run twice into one output root (slow: marked e2e)."""

import os

import pytest

from pipeline import configs, local_runner, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("outputs"))
    assert run.main(["--output-root", root]) == 0
    first = local_runner.latest_run_artifacts(configs.output_paths(root).metadata, configs.PIPELINE_NAME)
    assert run.main(["--output-root", root]) == 0
    second = local_runner.latest_run_artifacts(configs.output_paths(root).metadata, configs.PIPELINE_NAME)
    return root, first, second


def test_every_artifact_is_under_the_output_root(two_runs):
    root, first, _ = two_runs
    components = {component for component, _, _, _ in first}
    assert {"CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "Transform"} <= components
    for _, _, state, uri in first:
        assert state == "COMPLETE"
        assert uri.startswith(root) and os.path.exists(uri), uri


def test_default_data_has_no_anomalies(two_runs):
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    _, first, _ = two_runs
    (anomalies_dir,) = [uri for component, kind, _, uri in first if kind == "ExampleAnomalies"
                        and component == "ExampleValidator"]
    for split in ("train", "eval"):
        with open(os.path.join(anomalies_dir, f"Split-{split}", "SchemaDiff.pb"), "rb") as f:
            anomalies = anomalies_pb2.Anomalies.FromString(f.read())
        assert not anomalies.anomaly_info, anomalies.anomaly_info


def test_second_run_reuses_the_first_runs_outputs(two_runs):
    _, first, second = two_runs
    assert {state for _, _, state, _ in second} == {"CACHED"}
    assert sorted(uri for *_, uri in second) == sorted(uri for *_, uri in first)
