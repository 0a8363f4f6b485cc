"""tf.Transform preprocessing of a table with blanks: the missing-value groups the model is told match its output,
and a category never seen in training reads as a blank."""

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import schema_utils

from model.features import TRANSFORMED_FEATURES_KEY
from pipeline.configs import ZSCORE, FeaturePlan
from pipeline.preprocessing import missing_groups, preprocessing_fn, vocabulary_name

# income has blanks; colour (text) has blanks, its most frequent value, which must not cost a category its slot;
# shape (text) and age are complete
ROWS = [
    {"age": [30.0], "colour": ["blue"], "income": [], "shape": ["round"]},
    {"age": [41.0], "colour": [], "income": [12.0], "shape": ["square"]},
    {"age": [52.0], "colour": ["blue"], "income": [20.0], "shape": ["round"]},
    {"age": [35.0], "colour": ["red"], "income": [], "shape": ["round"]},
    {"age": [60.0], "colour": ["blue"], "income": [31.0], "shape": ["square"]},
    {"age": [28.0], "colour": ["red"], "income": [8.0], "shape": ["round"]},
    {"age": [47.0], "colour": [], "income": [15.0], "shape": ["square"]},
    {"age": [33.0], "colour": [], "income": [22.0], "shape": ["round"]},
    {"age": [55.0], "colour": [], "income": [], "shape": ["round"]},
]
SPEC = {"age": tf.io.FixedLenFeature([], tf.float32), "colour": tf.io.VarLenFeature(tf.string),
        "income": tf.io.VarLenFeature(tf.float32), "shape": tf.io.VarLenFeature(tf.string)}
PLAN = FeaturePlan(scaling=ZSCORE, columns=("age", "colour", "income", "shape"),
                   categorical={"colour": 2, "shape": 2}, missing=("colour", "income"))


def _transformed(rows: list[dict], spec: dict, plan: FeaturePlan, tmp_path, batch_size: int | None = None,
                 transform_dir: str | None = None) -> np.ndarray:
    """The ``features`` [len(rows), F] of ``rows`` through Transform (tf.Transform batching them by ``batch_size``,
    its own choice when None), writing the transform graph to ``transform_dir`` when given."""
    metadata = tft.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    out = tmp_path / f"x{batch_size}.npy"
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(tmp_path / f"tmp{batch_size}"),
                                                       desired_batch_size=batch_size):
        data = pipeline | beam.Create(rows)
        (transformed, _), transform_fn = (data, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, plan.to_custom_config()), output_record_batches=False)
        if transform_dir:
            _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)
        _ = transformed | beam.combiners.ToList() | beam.Map(
            lambda rows_out: np.save(out, np.stack([r[TRANSFORMED_FEATURES_KEY] for r in rows_out])))
    return np.load(out)


def test_missing_groups_name_each_indicator_and_the_columns_it_marks(tmp_path) -> None:
    rows = [{k: (v[0] if k == "age" else v) for k, v in row.items()} for row in ROWS]
    x = _transformed(rows, SPEC, PLAN, tmp_path, transform_dir=str(tmp_path / "transform"))
    groups = missing_groups(PLAN)
    # age 1 + colour 3 (missing or unseen, blue, red) + income 2 + shape 3 (missing or unseen, round, square)
    assert x.shape == (len(ROWS), 9)
    assert groups == ((1, 2, 3), (5, 4), (6, 7, 8))
    colour_missing = np.array([not row["colour"] for row in ROWS])
    income_missing = np.array([not row["income"] for row in ROWS])
    np.testing.assert_array_equal(x[:, 1] > 0, colour_missing)
    for slot, colour in ((2, "blue"), (3, "red")):  # the most frequent category first; blanks take none of these
        np.testing.assert_array_equal(x[:, slot] > 0, [row["colour"] == [colour] for row in ROWS], err_msg=colour)
    np.testing.assert_array_equal(x[:, 5] > 0, income_missing)
    assert np.all(x[income_missing, 4] == x[income_missing, 4][0]), "missing values: the same imputed mean"
    assert np.all(x[:, 6] == 0), "shape had no blank: its slot is 0 in every training row"
    output = tft.TFTransformOutput(str(tmp_path / "transform"))
    assert output.vocabulary_by_name(vocabulary_name("colour")) == [b"__missing__", b"blue", b"red"]

    # serving: the same graph, a category never seen in training takes the "missing or unseen" slot, as a blank does
    layer = output.transform_features_layer()
    raw = {"age": tf.constant([30.0, 30.0]), "colour": tf.sparse.from_dense(tf.constant([["purple"], [""]])),
           "income": tf.sparse.from_dense(tf.constant([[12.0], [12.0]])),
           "shape": tf.sparse.from_dense(tf.constant([["round"], ["oval"]]))}
    served = layer(raw)[TRANSFORMED_FEATURES_KEY].numpy()
    np.testing.assert_allclose(served[0, 1:4], x[colour_missing][0, 1:4], err_msg="unseen colour = blank colour")
    assert served[1, 6] > 0 and np.all(served[1, 7:9] < 0), "unseen shape: its slot set, no category"


def test_the_scaling_does_not_depend_on_how_beam_batches_or_orders_the_rows(tmp_path) -> None:
    """Beam sizes tf.Transform's batches by the machine's load, so the statistics must not depend on the order they
    are added up in: a pipeline run must repeat exactly from its seed (the z-scores and the imputed mean)."""
    rng = np.random.default_rng(0)
    n = 600
    big = 1000.0 + rng.normal(size=n) * 3.1
    small = rng.normal(size=n) * 1e-3 + 0.7
    rows = [{"id": [float(i)], "big": [float(b)], "small": [float(s)] if i % 7 else []}
            for i, (b, s) in enumerate(zip(big, small, strict=True))]
    spec = {"id": tf.io.VarLenFeature(tf.float32), "big": tf.io.VarLenFeature(tf.float32),
            "small": tf.io.VarLenFeature(tf.float32)}
    plan = FeaturePlan(scaling=ZSCORE, columns=("big", "id", "small"), missing=("small",))
    a = _transformed(rows, spec, plan, tmp_path, batch_size=3)
    b = _transformed(rows[::-1], spec, plan, tmp_path, batch_size=100)[::-1]
    assert a.shape == (n, 4)
    np.testing.assert_array_equal(a, b)


def test_text_columns_named_in_any_language_get_vocabularies(tmp_path) -> None:
    """TensorFlow scope names take only ASCII: 'région/zone' had stopped Transform with a 100-line traceback. Names
    that differ only outside ASCII, or that tf.Transform rewrites alike ('a.b', 'a_b': they had shared one vocabulary
    and a_b's one-hot block was all zeros), keep apart vocabularies."""
    names = ("région/zone", "rágion/zone", "価格 (円)", "a.b", "a_b")
    rows = [{name: [value] for name in names} for value in ("a", "b", "a", "c", "a")]
    spec = {name: tf.io.VarLenFeature(tf.string) for name in names}
    plan = FeaturePlan(scaling=ZSCORE, columns=names, categorical=dict.fromkeys(names, 3))
    x = _transformed(rows, spec, plan, tmp_path, transform_dir=str(tmp_path / "transform"))
    assert x.shape == (5, 20)
    output = tft.TFTransformOutput(str(tmp_path / "transform"))
    assert len({vocabulary_name(name) for name in names}) == 5
    for name in names:
        vocabulary = output.vocabulary_by_name(vocabulary_name(name))
        assert vocabulary[:2] == [b"__missing__", b"a"] and sorted(vocabulary[2:]) == [b"b", b"c"]
