"""The benchmark panel: datasets built as documented, share error, CLI errors, a tiny real run (e2e)."""

import json

import numpy as np
import pytest

from bench import datasets, panel
from model import metrics


def test_share_error_is_zero_for_a_relabelled_partition_and_sees_merged_classes():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    assert metrics.share_error(labels, (labels + 1) % 3) == 0.0
    merged = np.where(labels == 2, 1, labels)  # the rare class is swallowed
    assert metrics.share_error(labels, merged) == pytest.approx(0.10)


def test_imbalanced_variants_keep_the_documented_shares(mnist10k_path):
    test = datasets.mnist_half("test", mnist10k_path)
    dev = datasets.mnist_half("dev", mnist10k_path)
    assert len(test.x) == len(dev.x) == 5000 and not np.shares_memory(test.x, dev.x)
    five = datasets.five_at_15(test)
    counts, full = np.bincount(five.y), np.bincount(test.y)
    np.testing.assert_array_equal(counts[:5], full[:5])
    np.testing.assert_allclose(counts[5:] / full[5:], 0.15, atol=0.002)
    draw0, draw1, rare = datasets.five_at_15(dev), datasets.five_at_15(dev, draw=1), datasets.five_at_15(dev, range(5))
    assert draw0.name == "mnist_dev_five_at_15pct" and five.name == "mnist_test_five_at_15pct"
    dev_full = np.bincount(dev.y)
    np.testing.assert_array_equal(np.bincount(draw1.y), np.bincount(draw0.y))
    assert not np.array_equal(draw1.x, draw0.x)  # other examples of the rare digits
    np.testing.assert_array_equal(np.bincount(rare.y)[5:], dev_full[5:])
    np.testing.assert_allclose(np.bincount(rare.y)[:5] / dev_full[:5], 0.15, atol=0.002)
    assert (draw1.name, rare.name) == ("mnist_dev_five_at_15pct_draw1", "mnist_dev_five_at_15pct_rare0to4")
    assert {"mnist_dev_five_at_15pct_rare2to6", "mnist_dev_five_at_15pct_rare3to7"} <= set(datasets.DEV)
    with pytest.raises(ValueError, match="consecutive"):
        datasets.five_at_15(dev, rare=(0, 2))
    tail = datasets.long_tail(test)
    ratio = np.bincount(tail.y) / full
    assert ratio[0] == 1.0 and ratio[9] == pytest.approx(0.05, abs=0.003) and np.all(np.diff(ratio) < 0)


def test_tables_are_standardised():
    iris = datasets.load("iris")
    assert iris.x.shape == (150, 4) and iris.n_classes == 3 and iris.kind == "table"
    np.testing.assert_allclose(iris.x.mean(0), 0, atol=1e-5)


def test_dev_tables_are_standardised_tables_of_dev_data_only():
    blobs = datasets.load("unequal_blobs")
    assert blobs.x.shape == (950, 10) and np.array_equal(np.bincount(blobs.y), [600, 200, 100, 50])
    assert set(datasets.DEV).isdisjoint(datasets.PANEL) and all("test" not in name for name in datasets.DEV)
    for name in ("mnist_dev_8x8_table", "mnist_dev_8x8_cropped_table"):  # dev stand-ins for scikit-learn's digits
        digits = datasets.load(name)
        assert digits.name == name and digits.x.shape == (1800, 64) and digits.n_classes == 10
        assert digits.kind == "table"
        np.testing.assert_allclose(digits.x.mean(0), 0, atol=1e-5)


def test_mixed_dev_tables_are_csvs_with_segments_text_blanks_and_a_sequential_id(tmp_path):
    from pipeline import data

    path = str(tmp_path / "d2.csv")
    assert datasets.write_mixed_table("mixed_d2", path) == 5
    columns = {c.name: c for c in data.scan_csv_source(path)}
    spec = datasets.MIXED_DEV_TABLES["mixed_d2"]
    assert columns["customer_id"].kind == data.DROPPED  # counts up by one: a sequential identifier
    assert [columns[f"t{j}"].kind for j in range(3)] == [data.CATEGORICAL] * 3
    assert all(columns[f"x{j}"].kind == data.NUMERIC for j in range(spec.numeric))
    blanks = np.mean([columns[f"x{j}"].missing for j in range(spec.numeric)]) / spec.rows
    assert blanks == pytest.approx(spec.blanks, abs=0.02) and columns["segment"].missing == 0
    with open(path) as f:
        segments = np.array([int(line.split(",")[1]) for line in f.readlines()[1:]])
    np.testing.assert_allclose(np.bincount(segments) / spec.rows, spec.shares, atol=0.03)
    with pytest.raises(ValueError, match="unknown mixed dev table"):
        datasets.write_mixed_table("mixed_d9", path)


def test_the_cropped_stand_in_scales_each_digit_to_fill_the_32x32_frame():
    image = np.zeros((28, 28))
    image[10:18, 12:16] = 1.0  # an 8x4 digit in the middle of the frame
    bitmap = datasets._to_32(image)
    assert bitmap.shape == (32, 32) and bitmap.all()  # cut to its bounding box and scaled, it fills the frame


def test_unknown_dataset_is_one_sentence(capsys):
    assert panel.main(["--datasets", "imagenet"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown dataset 'imagenet'"


@pytest.mark.e2e
def test_tiny_panel_run_writes_the_documented_json_and_resumes(tmp_path):
    out = tmp_path / "panel.json"
    argv = ["--datasets", "iris", "--seeds", "1", "--json", str(out), "--set", "pretrain_epochs=3",
            "--set", "epochs=2"]
    assert panel.main(argv) == 0
    result = json.loads(out.read_text())
    methods = result["datasets"]["iris"]["methods"]
    assert {"gmvae", "kmeans", "gmm", "ae_kmeans", "ae_gmm", "vae_gmm", "gmvae_init", "gmvae_auto"} == set(methods)
    for method in methods.values():
        for key in ("acc", "nmi", "train_seconds"):
            assert len(method[key]) == 1 and np.isfinite(method[key][0])
    assert methods["kmeans"]["acc"][0] > 0.6
    assert panel.main(argv) == 0, "a re-run skips the finished seed"
    assert json.loads(out.read_text())["datasets"]["iris"]["seeds"] == [0]
