"""A user's table through the whole local pipeline: numeric, text and missing values, K chosen or given (e2e)."""

import csv
import json
import os

import numpy as np
import pytest
import run_artifacts  # tests/e2e/run_artifacts.py
import tensorflow as tf

from model import features
from pipeline import configs, run

pytestmark = pytest.mark.e2e

FAST = ["--pretrain-epochs", "20", "--epochs", "10"]


def _mixed_table(path: str, n: int = 300, seed: int = 0) -> None:
    """Three segments with different numbers and colours; ~10% of numbers and colours missing; a free-text column."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 3, n)
    colours = np.array(["red", "green", "blue"])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "income", "age", "colour", "comment"])
        for i, s in enumerate(segment):
            income = "" if rng.random() < 0.1 else f"{rng.normal(10 + 10 * s, 2):.2f}"
            age = "NA" if rng.random() < 0.1 else str(int(rng.normal(30 + 15 * s, 3)))
            colour = "" if rng.random() < 0.1 else colours[s if rng.random() < 0.9 else rng.integers(3)]
            writer.writerow([f"c{i}", s, income, age, colour, f"note {i}"])


def _example(income: float | None, age: int | None, colour: str | None) -> bytes:
    feature = {}
    if income is not None:
        feature["income"] = tf.train.Feature(float_list=tf.train.FloatList(value=[income]))
    if age is not None:
        feature["age"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[age]))
    if colour is not None:
        feature["colour"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[colour.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_a_table_with_text_and_missing_values_is_trained_blessed_pushed_and_served(tmp_path, capsys):
    data = str(tmp_path / "customers.csv")
    _mixed_table(data)
    root = str(tmp_path / "out")
    assert run.main(["--data", data, "--output-root", root, "--clusters", "3"]) == 0  # the table preset's epochs
    printed = capsys.readouterr().out
    assert "colour: categorical, 3 categories (one-hot)" in printed
    assert "income: numeric, " in printed and "missing (imputed: mean + indicator)" in printed
    assert "comment: dropped, more than 50 distinct text values (free text or an identifier)" in printed

    metrics = run_artifacts.metrics(run_artifacts.outputs(root))
    candidate = metrics["candidate"]["metrics"]
    assert metrics["decision"]["blessed"] and np.isfinite(candidate["mean_elbo"]), metrics
    # Better than a GMM on the inputs (seeds 0, 1, 2 on 2026-11-27: 0.869 / 0.972 / 0.953 against 0.664 / 0.916 /
    # 0.907; seed 0 after blanks were left out of the likelihood 0.972, and with the shared "missing or unseen" text
    # slot 0.925). Against the AE + GMM it ties in the median (0.935 / 0.963 / 0.953; seed 0 now 0.963), so one run
    # cannot assert an order: the report carries the comparison for the user.
    others = metrics["comparison"]["methods"]
    assert candidate["acc"] > 0.8, metrics
    assert candidate["acc"] > others["gmm_inputs"]["acc"], others
    assert np.isfinite(others["ae_gmm"]["acc"]), others
    serving = configs.output_paths(root).serving
    assert "1" in os.listdir(serving), "blessed and pushed as version 1"

    model = tf.saved_model.load(os.path.join(serving, "1"))
    assert features.FEATURES_SIGNATURE not in model.signatures, "dense float rows cannot carry a text column"
    batch = [_example(30.0, 60, "blue"), _example(None, None, None), _example(10.0, 30, "purple"),
             _example(10.0, 30, None)]
    out = model.signatures[features.SERVING_SIGNATURE](**{features.SERVING_INPUT_KEY: tf.constant(batch)})
    probabilities = out[features.CLUSTER_PROBABILITIES].numpy()
    assert probabilities.shape == (4, 3) and np.all(np.isfinite(probabilities))
    assert out[features.CLUSTER].numpy()[0] != out[features.CLUSTER].numpy()[2], "segments 2 and 0 differ"
    for key in (features.CLUSTER_PROBABILITIES, features.ELBO):
        # the same transformed row scored in one batch: equal up to float32 rounding (3.0465573e-14 vs ...76e-14 seen)
        np.testing.assert_allclose(out[key].numpy()[2], out[key].numpy()[3], rtol=1e-5, atol=1e-7,
                                   err_msg="an unseen colour is a blank")


def test_auto_clusters_on_a_table_reports_the_choice(tmp_path, capsys):
    data = str(tmp_path / "customers.csv")
    _mixed_table(data, seed=1)
    root = str(tmp_path / "out")
    assert run.main(["--data", data, "--output-root", root, "--clusters", "auto", *FAST]) == 0
    _, model_run = run_artifacts.outputs(root)[("Trainer", "ModelRun")]
    with open(os.path.join(model_run, "history.json")) as f:
        history = json.load(f)
    assert 2 <= history["n_components"] <= 15 and history["k_reason"].startswith(f"K={history['n_components']} is")
