"""AnomalyGate: each kind of bad data stops the run before training, with what was expected and found."""

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tfx.types import artifact_utils, standard_artifacts

from components.anomaly_gate import executor as gate
from pipeline import configs
from pipeline.data import load_digits_arrays, pixel_names

SCHEMA = tfdv.load_schema_text(configs.DIGITS_SCHEMA)


def _digits(rows: int = 40) -> pd.DataFrame:
    images, labels = load_digits_arrays()
    frame = pd.DataFrame(images.reshape(-1, 64)[:rows].astype(np.int64), columns=pixel_names(64))
    frame.insert(0, "label", labels[:rows])
    frame.insert(0, "id", np.arange(rows))
    return frame


def _anomaly_lines(frame: pd.DataFrame) -> list[str]:
    stats = tfdv.generate_statistics_from_dataframe(frame)
    return gate.describe("train", tfdv.validate_statistics(stats, SCHEMA), SCHEMA)


def test_clean_digits_have_no_anomalies():
    assert _anomaly_lines(_digits()) == []


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (lambda f: f.drop(columns=["px_07"]),
         ["feature 'px_07': Column dropped", "expected: INT in [0, 16], in 100% of examples"]),
        (lambda f: f.drop(columns=pixel_names(64)[48:]),
         ["feature 'px_63': Column dropped", "feature 'px_48': Column dropped"]),
        (lambda f: f.assign(px_05=f["px_05"].astype(str) + "a"),
         ["feature 'px_05': Unexpected data type", "Expected data of type: INT but got STRING"]),
        (lambda f: f.assign(px_10=f["px_10"].where(f.index != 3, 300)),
         ["feature 'px_10': Out-of-range values", "Unexpectedly large value: 300", "expected: INT in [0, 16]"]),
        (lambda f: f.assign(px_20=f["px_20"].astype(float).where(f.index != 5, np.nan)),
         ["feature 'px_20'", "Expected data of type: INT but got FLOAT"]),
        (lambda f: f.assign(px_21=f["px_21"].astype(float).where(f.index != 5, np.inf)),
         ["feature 'px_21'", "Expected data of type: INT but got FLOAT"]),
        (lambda f: f.assign(label=f["label"].where(f.index != 0, -1)),
         ["feature 'label': Out-of-range values", "Unexpectedly small value: -1", "expected: INT in [0, 9]"]),
    ],
    ids=["missing-column", "wrong-image-size", "strings", "pixel-300", "nan", "inf", "bad-label"],
)
def test_each_fault_is_named_with_expected_and_found(corrupt, expected):
    text = "\n".join(_anomaly_lines(corrupt(_digits())))
    for fragment in expected:
        assert fragment in text, text


def _anomalies_artifact(tmp_path, anomalies_by_split):
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path / "anomalies")
    artifact.split_names = artifact_utils.encode_split_names(list(anomalies_by_split))
    for split, anomalies in anomalies_by_split.items():
        split_dir = artifact_utils.get_split_uri([artifact], split)
        os.makedirs(split_dir)
        with open(os.path.join(split_dir, gate.ANOMALIES_FILE), "wb") as f:
            f.write(anomalies.SerializeToString())
    return artifact


def _schema_artifact(tmp_path):
    artifact = standard_artifacts.Schema()
    artifact.uri = str(tmp_path / "schema")
    os.makedirs(artifact.uri)
    tfdv.write_schema_text(SCHEMA, os.path.join(artifact.uri, "schema.pbtxt"))
    return artifact


def test_executor_fails_the_run_listing_every_split_and_anomaly(tmp_path):
    bad = _digits().assign(px_10=lambda f: f["px_10"].where(f.index != 3, 300))
    anomalies = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(bad), SCHEMA)
    clean = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(_digits()), SCHEMA)
    result = standard_artifacts.ExampleAnomalies()
    result.uri = str(tmp_path / "result")
    with pytest.raises(gate.DataAnomaliesError) as error:
        gate.Executor().Do(
            {gate.ANOMALIES_KEY: [_anomalies_artifact(tmp_path, {"train": anomalies, "eval": clean})],
             gate.SCHEMA_KEY: [_schema_artifact(tmp_path)]},
            {gate.RESULT_KEY: [result]}, {})
    message = str(error.value)
    assert message.startswith("the input data has 1 anomalies, so training was not started:")
    assert "train split, feature 'px_10': Out-of-range values. Unexpectedly large value: 300." in message
    assert "(expected: INT in [0, 16], in 100% of examples)" in message
    assert not os.path.exists(result.uri)


def test_executor_passes_clean_data_on(tmp_path):
    clean = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(_digits()), SCHEMA)
    result = standard_artifacts.ExampleAnomalies()
    result.uri = str(tmp_path / "result")
    gate.Executor().Do({gate.ANOMALIES_KEY: [_anomalies_artifact(tmp_path, {"train": clean, "eval": clean})]},
                       {gate.RESULT_KEY: [result]}, {})
    assert sorted(os.listdir(result.uri)) == ["Split-eval", "Split-train"]
