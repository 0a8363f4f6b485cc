"""A run on data that breaks the schema stops before training, says why, and exits non-zero (slow: e2e)."""

import os

import pytest

from pipeline import configs, run
from pipeline.data import load_digits_arrays, write_images_csv

pytestmark = pytest.mark.e2e


def test_out_of_range_pixel_stops_the_run_before_training(tmp_path, capsys):
    images, labels = load_digits_arrays()
    images[5, 2, 2] = 300
    write_images_csv(images, labels, str(tmp_path / "bad.csv"))
    root = str(tmp_path / "out")
    code = run.main(["--data", str(tmp_path / "bad.csv"), "--schema", configs.DIGITS_SCHEMA, "--output-root", root])
    assert code == 3
    err = capsys.readouterr().err
    assert "error: the input data has 1 anomalies, so training was not started:" in err
    assert "feature 'px_18': Out-of-range values. Unexpectedly large value: 300." in err
    assert "(expected: INT in [0, 16], in 100% of examples)" in err
    pipeline_root = configs.output_paths(root).pipeline_root
    assert not os.path.exists(os.path.join(pipeline_root, "Trainer"))
    assert not os.path.exists(configs.output_paths(root).serving)
