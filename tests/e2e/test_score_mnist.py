"""Batch scoring of the real MNIST sample (10,000 rows + injected bad rows) on the DirectRunner; prints rows/s.

Runs the default engine (dense batches through ``predict_features``); the RunInference engine is covered on small data
by tests/test_batch_scoring.py, which keeps this test at well under a minute.
"""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from batch_scoring.job import run
from model import features
from model.config import GMVAEConfig
from model.export import export_saved_model
from model.training import build_model
from pipeline.data import load_npz_arrays, pixel_names, write_images_csv

BAD = {17: "abc", 4242: None, 9999: "nan"}


@pytest.mark.e2e
def test_score_mnist10k(mnist10k_path, tmp_path) -> None:
    images, labels = load_npz_arrays(mnist10k_path)
    model = build_model(GMVAEConfig(input_dim=784, image_shape=None, hidden_units=(32,), latent_dim=4,
                                    n_components=10, input_scale=1 / 255))
    names = pixel_names(784)
    spec = {name: tf.io.FixedLenFeature([1], tf.int64) for name in names}  # as pushed models parse CSV ints
    export_saved_model(model, str(tmp_path / "serving" / "1"), names, feature_spec=spec)

    path = tmp_path / "mnist.csv"
    write_images_csv(images, labels, str(path))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    for i, value in BAD.items():
        rows[1 + i] = rows[1 + i][:-1] if value is None else rows[1 + i][:10] + [value] + rows[1 + i][11:]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)

    summary = run(["--model", str(tmp_path / "serving"), "--input", str(path), "--output", str(tmp_path / "out"),
                   "--num-shards", "4"])
    assert summary["engine"] == "dofn"
    print(f"\n[score mnist10k, {summary['engine']}] read {summary['read']}, scored {summary['scored']}, dead-lettered "
          f"{summary['dead_lettered']} in {summary['pipeline_seconds']:.1f} s: {summary['rows_per_second']:.0f} rows/s")
    good = [i for i in range(len(images)) if i not in BAD]
    assert (summary["read"], summary["scored"], summary["dead_lettered"]) == (len(images), len(good), len(BAD))

    scored = {}
    for name in sorted(os.listdir(tmp_path / "out")):
        if name.startswith("scores-"):
            with open(tmp_path / "out" / name, newline="") as f:
                for row in csv.DictReader(f):
                    assert row["id"] not in scored
                    scored[row["id"]] = int(row[features.CLUSTER])
    expected = model.predict_outputs(images.reshape(len(images), -1)[good].astype(np.float32) / 255.0)
    np.testing.assert_array_equal([scored[str(i)] for i in good], expected[features.CLUSTER])
    dead = [json.loads(line) for line in (tmp_path / "out" / "dead_letter-00000-of-00001.jsonl").read_text().split("\n")
            if line]
    assert sorted(int(d["id"]) for d in dead) == sorted(BAD)
    reasons = {int(d["id"]): d["reason"] for d in dead}
    assert "non-numeric" in reasons[17] and "fields but the header has" in reasons[4242]
    assert "is missing and the model requires it" in reasons[9999], "nan is a missing value; pixels are required"
