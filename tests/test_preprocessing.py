"""tf.Transform preprocessing of a table with blanks: the missing-value groups the model is told match its output."""

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import schema_utils

from model.features import TRANSFORMED_FEATURES_KEY
from pipeline.configs import ZSCORE, FeaturePlan
from pipeline.preprocessing import missing_groups, preprocessing_fn, vocabulary_name

# income has blanks; colour (text) has blanks, and "blue" is the most frequent value so "missing" is not first;
# shape (text) and age are complete
ROWS = [
    {"age": [30.0], "colour": ["blue"], "income": [], "shape": ["round"]},
    {"age": [41.0], "colour": [], "income": [12.0], "shape": ["square"]},
    {"age": [52.0], "colour": ["blue"], "income": [20.0], "shape": ["round"]},
    {"age": [35.0], "colour": ["red"], "income": [], "shape": ["round"]},
    {"age": [60.0], "colour": ["blue"], "income": [31.0], "shape": ["square"]},
    {"age": [28.0], "colour": ["red"], "income": [8.0], "shape": ["round"]},
]
SPEC = {"age": tf.io.FixedLenFeature([], tf.float32), "colour": tf.io.VarLenFeature(tf.string),
        "income": tf.io.VarLenFeature(tf.float32), "shape": tf.io.VarLenFeature(tf.string)}
PLAN = FeaturePlan(scaling=ZSCORE, columns=("age", "colour", "income", "shape"),
                   categorical={"colour": 2, "shape": 2}, missing=("colour", "income"))


def test_missing_groups_name_each_indicator_and_the_columns_it_marks(tmp_path) -> None:
    rows = [{k: (v[0] if k == "age" else v) for k, v in row.items()} for row in ROWS]
    metadata = tft.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC))
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
        data = pipeline | beam.Create(rows)
        (transformed, _), transform_fn = (data, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, PLAN.to_custom_config()), output_record_batches=False)
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "transform"))
        _ = transformed | beam.combiners.ToList() | beam.Map(
            lambda out: np.save(tmp_path / "x.npy", np.stack([r[TRANSFORMED_FEATURES_KEY] for r in out])))
    x = np.load(tmp_path / "x.npy")
    output = tft.TFTransformOutput(str(tmp_path / "transform"))
    groups = missing_groups(PLAN, lambda column: output.vocabulary_by_name(vocabulary_name(column)))
    # age 1 + colour 4 (blue, red, missing, unseen) + income 2 + shape 3 (two categories, unseen)
    assert x.shape == (len(ROWS), 10)
    colour_missing = np.array([not row["colour"] for row in ROWS])
    income_missing = np.array([not row["income"] for row in ROWS])
    assert len(groups) == 2
    (slot, *colour_slots), (indicator, income) = groups
    np.testing.assert_array_equal(x[:, slot] > 0, colour_missing)
    assert sorted([slot, *colour_slots]) == [1, 2, 3, 4] and slot != 1, "the most frequent colour comes first"
    np.testing.assert_array_equal(x[:, indicator] > 0, income_missing)
    assert income == indicator - 1 == 5
    assert np.all(x[income_missing, income] == x[income_missing, income][0]), "missing values: the same imputed mean"
