"""Tables with text columns and missing values: the serving helpers and batch scoring treat raw rows as the model does.

The models here are exported like pushed table models, without tf.Transform: a ``tf.Module`` preprocess one-hots
text columns with fixed lookup tables and imputes a sparse (``VarLenFeature``) numeric column, and the raw feature
spec has a required text column, an optional (sparse) text column, an optional float column and a required int64.
"""

import csv
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from batch_scoring.infer import dense_to_examples
from batch_scoring.job import resolve_engine, run
from batch_scoring.options import AUTO, CSV, DOFN, PARQUET, RUNINFERENCE, TFRECORD
from batch_scoring.read import DEAD_TAG, ReadRows
from model import features
from model.config import GMVAEConfig
from model.export import export_saved_model
from model.training import build_model, latent_means
from serving import feature_spec as fs
from serving import request as sr

COLOURS = ["red", "green", "blue"]
SHAPES = ["circle", "square"]
TEXT_SPEC = {"colour": tf.io.FixedLenFeature([1], tf.string), "count": tf.io.FixedLenFeature([1], tf.int64),
             "shape": tf.io.VarLenFeature(tf.string), "size": tf.io.VarLenFeature(tf.float32)}
NUMERIC_SPEC = {"count": tf.io.FixedLenFeature([1], tf.int64), "size": tf.io.VarLenFeature(tf.float32)}
MISSING = [None, "", " ", "NA", "n/a", "NaN", "null", "None", "?", "#N/A", "<NA>", "#DIV/0!", float("nan")]


def _lookup(keys: list[str]) -> tf.lookup.StaticHashTable:
    init = tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.range(len(keys), dtype=tf.int64))
    return tf.lookup.StaticHashTable(init, default_value=len(keys))  # unseen text: one extra slot


def _dense(sparse: tf.SparseTensor, rows: tf.Tensor, default) -> tf.Tensor:
    """A [batch] tensor from a sparse [batch, <=1] column, ``default`` where the row has no value."""
    shaped = tf.sparse.reset_shape(sparse, tf.stack([rows, tf.constant(1, tf.int64)]))
    return tf.reshape(tf.sparse.to_dense(shaped, default_value=default), [-1])


class TablePrep(tf.Module):
    """One-hot text (fixed vocabularies, a missing slot for the optional one), mean + indicator for ``size``."""

    def __init__(self, text: bool = True) -> None:
        super().__init__()
        self.text = text
        self.colours = _lookup(COLOURS)
        self.shapes = _lookup(SHAPES + ["__missing__"])
        self.size_mean = tf.Variable(2.0)

    def __call__(self, raw):
        count = tf.cast(tf.reshape(raw["count"], [-1]), tf.float32)
        rows = tf.shape(count, out_type=tf.int64)[0]
        size = _dense(raw["size"], rows, float("nan"))
        present = tf.math.logical_not(tf.math.is_nan(size))
        numeric = tf.stack([tf.where(present, size, self.size_mean), 1.0 - tf.cast(present, tf.float32),
                            count / 10.0], axis=1)
        if not self.text:
            return numeric
        colour = tf.one_hot(self.colours.lookup(tf.reshape(raw["colour"], [-1])), len(COLOURS) + 1)
        shape = tf.one_hot(self.shapes.lookup(_dense(raw["shape"], rows, "__missing__")), len(SHAPES) + 2)
        return tf.concat([colour, shape, numeric], axis=1)


def hand_example(row: dict) -> bytes:
    """A tf.Example written out by hand (no serving helper): missing (None) values left out."""
    feats = {}
    for name, value in row.items():
        if value is None:
            continue
        if name in ("colour", "shape"):
            feats[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        elif name == "count":
            feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            feats[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def _rows(n: int, text: bool = True) -> list[dict]:
    """Varied good rows; ``None`` is missing (only in the optional columns)."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        row = {"count": int(rng.integers(0, 20)), "size": None if i % 4 == 1 else round(float(rng.normal(2, 2)), 3)}
        if text:
            row["colour"] = COLOURS[i % 3] if i % 7 else "purple"  # an unseen category now and then
            row["shape"] = None if i % 5 == 2 else SHAPES[i % 2]
        rows.append(row)
    return rows


def _export(path: str, text: bool):
    prep = TablePrep(text)
    spec = TEXT_SPEC if text else NUMERIC_SPEC
    dim = 11 if text else 3
    config = GMVAEConfig(input_dim=dim, image_shape=None, hidden_units=(16,), latent_dim=2, n_components=4,
                         likelihood="gaussian")
    model = build_model(config)
    x = prep(tf.io.parse_example([hand_example(r) for r in _rows(40, text)], spec)).numpy()
    z = latent_means(model, x)
    model.prior.set_mixture(np.full(4, 0.25), z[[0, 9, 18, 27]], np.full((4, 2), 0.05))  # clusters on data points
    export_saved_model(model, path, sorted(spec), preprocess=prep, feature_spec=spec)
    return path


@pytest.fixture(scope="module")
def text_model(tmp_path_factory) -> str:
    return _export(str(tmp_path_factory.mktemp("text") / "1"), text=True)


@pytest.fixture(scope="module")
def numeric_model(tmp_path_factory) -> str:
    return _export(str(tmp_path_factory.mktemp("numeric") / "1"), text=False)


def _serve(model_dir: str, rows: list[dict]) -> np.ndarray:
    """Clusters from calling serving_default directly on hand-built tf.Examples."""
    signature = tf.saved_model.load(model_dir).signatures[features.SERVING_SIGNATURE]
    examples = tf.constant([hand_example(r) for r in rows])
    return signature(**{features.SERVING_INPUT_KEY: examples})[features.CLUSTER].numpy()


# ---- the feature spec and single requests ----------------------------------------------------------------------------


def test_spec_reader_returns_text_and_optional_features(text_model, numeric_model) -> None:
    spec = fs.read_feature_spec(text_model)
    assert spec == {"colour": fs.RawFeature("colour", fs.STRING, (1,), optional=False),
                    "count": fs.RawFeature("count", fs.INT64, (1,), optional=False),
                    "shape": fs.RawFeature("shape", fs.STRING, (), optional=True),
                    "size": fs.RawFeature("size", fs.FLOAT32, (), optional=True)}
    assert list(spec) == ["colour", "count", "shape", "size"]
    assert fs.model_signatures(text_model) == {features.SERVING_SIGNATURE, features.TRANSFORM_SIGNATURE}
    assert fs.read_feature_spec(numeric_model) == {"count": fs.RawFeature("count", fs.INT64, (1,)),
                                                   "size": fs.RawFeature("size", fs.FLOAT32, (), optional=True)}
    assert features.FEATURES_SIGNATURE in fs.model_signatures(numeric_model)


def test_spec_reader_reads_the_parsing_of_serving_default_not_of_another_signature(tmp_path) -> None:
    """A second signature that parses other features (like a transform_features signature) is never read instead."""

    class TwoParsers(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def _a_other(self, examples):
            parsed = tf.io.parse_example(examples, {"label": tf.io.FixedLenFeature([], tf.int64),
                                                    "note": tf.io.VarLenFeature(tf.string)})
            return {"out": tf.cast(parsed["label"], tf.float32)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def _serve(self, examples):
            return {"out": tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([], tf.float32)})["x"]}

    module = TwoParsers()
    serve = module._serve.get_concrete_function()  # traced first: the other parser comes first in the library
    tf.saved_model.save(module, str(tmp_path), signatures={features.SERVING_SIGNATURE: serve, "other": module._a_other})
    assert fs.read_feature_spec(str(tmp_path)) == {"x": fs.RawFeature("x", fs.FLOAT32, ())}


def test_build_example_omits_missing_optional_values_and_refuses_missing_required_ones(text_model) -> None:
    spec = fs.read_feature_spec(text_model)
    for missing in MISSING:
        example = tf.train.Example.FromString(
            fs.build_example({"colour": "red", "count": "3", "shape": missing, "size": missing}, spec))
        feats = example.features.feature
        assert set(feats) == {"colour", "count"}, repr(missing)
        assert list(feats["colour"].bytes_list.value) == [b"red"] and list(feats["count"].int64_list.value) == [3]
        fs.check_example(example.SerializeToString(), spec)
        for name in ("colour", "count"):
            row = {"colour": "red", "count": 3, "shape": "circle", "size": 1.5, name: missing}
            with pytest.raises(fs.RequestError, match=f"^feature '{name}' is missing and the model requires it.$"):
                fs.build_example(row, spec)
    with pytest.raises(fs.RequestError, match="^feature 'colour' is missing and the model requires it.$"):
        fs.build_example({"count": 3}, spec)  # absent
    feats = tf.train.Example.FromString(fs.build_example({"colour": 7, "count": 3.0, "shape": "square ", "size": "2.5"},
                                                         spec)).features.feature
    assert list(feats["colour"].bytes_list.value) == [b"7"] and list(feats["shape"].bytes_list.value) == [b"square "]
    assert list(feats["size"].float_list.value) == [2.5] and list(feats["count"].int64_list.value) == [3]
    with pytest.raises(fs.RequestError, match="non-numeric"):
        fs.build_example({"colour": "red", "count": "three"}, spec)
    # the same row gives the same bytes in every process: the feature map is written in key order
    built = fs.build_example({"colour": "red", "count": 3, "shape": "circle", "size": 1.5}, spec, extra={"id": "r1"})
    assert built == tf.train.Example.FromString(built).SerializeToString(deterministic=True)


def test_check_example_accepts_absent_optional_features_only(text_model) -> None:
    spec = fs.read_feature_spec(text_model)
    fs.check_example(hand_example({"colour": "red", "count": 1, "shape": None, "size": None}), spec)
    fs.check_example(hand_example({"colour": "red", "count": 1, "shape": "circle", "size": 0.5}), spec)
    with pytest.raises(fs.RequestError, match="no feature 'colour', and the model requires it"):
        fs.check_example(hand_example({"count": 1}), spec)
    wrong = tf.train.Example(features=tf.train.Features(feature={
        "colour": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
        "count": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))})).SerializeToString()
    with pytest.raises(fs.RequestError, match="'colour' is a int64_list, but the model parses a bytes_list"):
        fs.check_example(wrong, spec)


def test_request_bodies_and_cli_for_a_model_with_text(text_model, tmp_path, capsys) -> None:
    spec = fs.read_feature_spec(text_model)
    rows = [{"colour": "blue", "count": "4", "shape": "", "size": "NA"}, {"colour": "red", "count": "2",
                                                                          "shape": "circle", "size": "1.25"}]
    loaded = tf.saved_model.load(text_model)
    response = sr.predict(loaded, json.dumps(sr.examples_body(rows, spec)), spec)
    expected = _serve(text_model, [{"colour": "blue", "count": 4, "shape": None, "size": None},
                                   {"colour": "red", "count": 2, "shape": "circle", "size": 1.25}])
    assert [p[features.CLUSTER] for p in response["predictions"]] == expected.tolist()
    with pytest.raises(fs.RequestError, match="has no predict_features signature"):
        sr.features_body(rows, spec)
    with pytest.raises(fs.RequestError, match="has no predict_features signature"):
        sr.parse_request({"signature_name": features.FEATURES_SIGNATURE, "instances": [[1, 2, 3, 4]]}, spec)

    path = tmp_path / "in.csv"
    path.write_text("id,colour,count,shape,size\n1,blue,4,,NA\n2,red,2,circle,1.25\n")
    assert sr.main(["--model", text_model, "--csv", str(path), "--rows", "2", "--predict"]) == 0
    body, response = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    assert len(body["instances"]) == 2
    assert [p[features.CLUSTER] for p in response["predictions"]] == expected.tolist()
    assert sr.main(["--model", text_model, "--csv", str(path), "--signature", features.FEATURES_SIGNATURE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the model has text (categorical) columns, so it has no "
                                               "predict_features signature")
    path.write_text("id,colour,count,shape,size\n1,blue,4,,NA\n2,red,two,circle,1.25\n")
    assert sr.main(["--model", text_model, "--csv", str(path), "--rows", "2"]) == 2
    assert capsys.readouterr().err == f"error: {path}, data row 2: feature 'count' has a non-numeric value 'two'.\n"
    with pytest.raises(SystemExit):
        sr.main(["--help"])
    assert "a model with text (categorical) columns has no predict_features signature" in " ".join(
        capsys.readouterr().out.split())


def test_more_rows_than_the_csv_has_give_all_of_them_and_a_note_on_stderr(text_model, tmp_path, capsys) -> None:
    """--rows beyond the CSV's data rows: the body holds every row, stderr says so in one line, stdout is the body."""
    path = tmp_path / "in.csv"
    path.write_text("id,colour,count,shape,size\n1,blue,4,,NA\n2,red,2,circle,1.25\n")
    assert sr.main(["--model", text_model, "--csv", str(path), "--rows", "1000"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)["instances"]) == 2 and out.count("\n") == 1
    assert err == f"note: {path} has only 2 data rows; the body holds all 2 (--rows 1000).\n"
    assert sr.main(["--model", text_model, "--csv", str(path), "--rows", "2"]) == 0
    assert capsys.readouterr().err == "", "no note when the CSV has the rows asked for"


def test_dense_requests_carry_nan_for_missing_optional_values(numeric_model) -> None:
    spec = fs.read_feature_spec(numeric_model)
    body = sr.features_body([{"count": 3, "size": ""}, {"count": "5", "size": "0.5"}], spec)
    assert math.isnan(body["instances"][0][1]) and body["instances"][1] == [5.0, 0.5]
    loaded = tf.saved_model.load(numeric_model)
    got = sr.predict(loaded, json.dumps(body), spec)  # Python's JSON writes and reads NaN
    expected = _serve(numeric_model, [{"count": 3, "size": None}, {"count": 5, "size": 0.5}])
    assert [p[features.CLUSTER] for p in got["predictions"]] == expected.tolist()
    with pytest.raises(fs.RequestError, match="row 0, column 0 is nan"):  # NaN only where the feature is optional
        sr.parse_request({"signature_name": features.FEATURES_SIGNATURE, "instances": [[float("nan"), 1.0]]}, spec)


# ---- batch scoring -----------------------------------------------------------------------------------------------


def _write_csv(path, rows: list[dict], names: list[str], bad: list[list[str]]) -> None:
    """Good rows (missing values written in every missing spelling, in turn) and then the ``bad`` raw rows."""
    spellings = ["", "NA", "NaN", "null", "?", "n/a", " ", "None"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *names])
        for i, row in enumerate(rows):
            writer.writerow([f"r{i}", *[spellings[i % len(spellings)] if row[n] is None else row[n] for n in names]])
        writer.writerows(bad)


def _scores(output) -> dict[str, int]:
    clusters = {}
    for name in sorted(os.listdir(output)):
        if name.startswith("scores-"):
            with open(os.path.join(output, name), newline="") as f:
                clusters.update({r["id"]: int(r[features.CLUSTER]) for r in csv.DictReader(f)})
    return clusters


def _dead(output) -> dict[str, str]:
    text = (output / "dead_letter-00000-of-00001.jsonl").read_text()
    return {d["id"]: d["reason"] for d in map(json.loads, text.splitlines())}


def test_batch_scoring_a_csv_with_text_and_blanks(text_model, tmp_path) -> None:
    rows = _rows(30)
    names = ["colour", "count", "shape", "size"]
    bad = [["b0", "", "3", "circle", "1"], ["b1", "red", "", "circle", "1"], ["b2", "red", "x", "", ""],
           ["b3", "NA", "3", "", "1"], ["b4", "red", "3", "circle", "inf"]]
    _write_csv(tmp_path / "in.csv", rows, names, bad)
    expected = _serve(text_model, rows)
    assert len(np.unique(expected)) > 1
    for engine in (AUTO, DOFN):
        out = tmp_path / engine
        summary = run(["--model", text_model, "--input", str(tmp_path / "in.csv"), "--output", str(out),
                       "--engine", engine, "--batch-size", "8"])
        assert summary["engine"] == (RUNINFERENCE if engine == AUTO else DOFN)  # auto: the tf.Example path
        assert (summary["read"], summary["scored"], summary["dead_lettered"]) == (35, 30, 5)
        got = _scores(out)
        assert len(got) == 30 and [got[f"r{i}"] for i in range(30)] == expected.tolist()
        assert _dead(out) == {"b0": "feature 'colour' is missing and the model requires it.",
                              "b1": "feature 'count' is missing and the model requires it.",
                              "b2": "feature 'count' has a non-numeric value 'x'.",
                              "b3": "feature 'colour' is missing and the model requires it.",
                              "b4": "feature 'size' is inf (values must be finite)."}


def test_batch_scoring_parquet_and_tfrecord_with_text_and_nulls(text_model, tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows(12)
    expected = _serve(text_model, rows)
    table = pa.table({"id": [f"r{i}" for i in range(12)] + ["bad"],
                      "colour": [r["colour"] for r in rows] + [None],
                      "count": pa.array([r["count"] for r in rows] + [1], pa.int64()),
                      "shape": [r["shape"] for r in rows] + ["circle"],
                      "size": pa.array([r["size"] for r in rows] + [1.0], pa.float64())})
    pq.write_table(table, str(tmp_path / "in.parquet"))
    summary = run(["--model", text_model, "--input", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "pq")])
    assert (summary["engine"], summary["scored"], summary["dead_lettered"]) == (RUNINFERENCE, 12, 1)
    got = _scores(tmp_path / "pq")
    assert [got[f"r{i}"] for i in range(12)] == expected.tolist()
    assert _dead(tmp_path / "pq") == {"bad": "feature 'colour' is missing and the model requires it."}

    with tf.io.TFRecordWriter(str(tmp_path / "in.tfrecord")) as writer:
        for i, row in enumerate(rows):
            example = tf.train.Example.FromString(hand_example(row))
            example.features.feature["id"].bytes_list.value.append(f"r{i}".encode())
            if row["size"] is None and i % 2:  # an empty list parses as missing too
                example.features.feature["size"].float_list.SetInParent()
            writer.write(example.SerializeToString())
    summary = run(["--model", text_model, "--input", str(tmp_path / "in.tfrecord"), "--output", str(tmp_path / "tfr"),
                   "--engine", DOFN])
    assert (summary["scored"], summary["dead_lettered"]) == (12, 0)
    got = _scores(tmp_path / "tfr")
    assert [got[f"r{i}"] for i in range(12)] == expected.tolist()


def test_batch_scoring_numeric_model_with_blanks_takes_the_dense_path(numeric_model, tmp_path) -> None:
    rows = _rows(24, text=False)
    bad = [["b0", "", "1.5"], ["b1", "NaN", ""]]
    _write_csv(tmp_path / "in.csv", rows, ["count", "size"], bad)
    expected = _serve(numeric_model, rows)
    assert len(np.unique(expected)) > 1
    for engine, want in ((AUTO, DOFN), (RUNINFERENCE, RUNINFERENCE)):
        out = tmp_path / engine
        summary = run(["--model", numeric_model, "--input", str(tmp_path / "in.csv"), "--output", str(out),
                       "--engine", engine, "--batch-size", "8"])
        assert (summary["engine"], summary["read"], summary["scored"], summary["dead_lettered"]) == (want, 26, 24, 2)
        got = _scores(out)
        assert [got[f"r{i}"] for i in range(24)] == expected.tolist()
        assert _dead(out) == {"b0": "feature 'count' is missing and the model requires it.",
                              "b1": "feature 'count' is missing and the model requires it."}


def test_reader_batches_dense_rows_with_nan_or_examples_by_model(numeric_model, text_model, tmp_path) -> None:
    """Dense batches (NaN = missing) only for a model with predict_features; tf.Examples for a model with text."""
    path = tmp_path / "in.csv"
    path.write_text("id,colour,count,shape,size\na,red,1,circle,\nb,blue,2,,0.5\n")
    dense_spec = fs.read_feature_spec(numeric_model)
    (keys, ids, inputs), = [item for item in ReadRows(CSV, dense_spec, 8).process(str(path))
                             if not hasattr(item, "tag")]
    assert ids == ["a", "b"] and isinstance(inputs, np.ndarray)
    np.testing.assert_array_equal(inputs, np.array([[1, np.nan], [2, 0.5]], np.float32))
    examples = dense_to_examples(inputs.astype(np.float64), dense_spec)  # the RunInference engine's encoding
    first = tf.train.Example.FromString(examples[0]).features.feature
    assert "size" not in first or not first["size"].float_list.value  # missing, not NaN
    for serialized in examples:
        fs.check_example(serialized, dense_spec)

    text_spec = fs.read_feature_spec(text_model)
    items = list(ReadRows(CSV, text_spec, 8, dense=False).process(str(path)))
    (keys, ids, inputs), = [item for item in items if not hasattr(item, "tag")]
    assert not [item for item in items if getattr(item, "tag", None) == DEAD_TAG]
    assert isinstance(inputs, list) and len(inputs) == 2
    first = tf.train.Example.FromString(inputs[0]).features.feature
    assert set(first) == {"colour", "count", "shape"} and list(first["colour"].bytes_list.value) == [b"red"]


def test_auto_engine_follows_the_model() -> None:
    assert resolve_engine(AUTO, CSV, dense=True) == DOFN and resolve_engine(AUTO, PARQUET, dense=True) == DOFN
    assert resolve_engine(AUTO, CSV, dense=False) == RUNINFERENCE
    assert resolve_engine(AUTO, PARQUET, dense=False) == RUNINFERENCE
    assert resolve_engine(AUTO, TFRECORD, dense=True) == RUNINFERENCE
    assert resolve_engine(DOFN, CSV, dense=False) == DOFN


def test_request_rows_from_a_spreadsheet_csv(tmp_path, capsys):
    """A byte-order mark is not part of the first column's name, quoted or not, and a quoted field may hold a line
    break; --rows must be at least 1."""
    path = tmp_path / "excel.csv"
    path.write_bytes("colour,count\r\nblue,4\r\nred,2\r\n".encode("utf-8-sig"))
    assert sr.read_csv_rows(str(path), 5) == [{"colour": "blue", "count": "4"}, {"colour": "red", "count": "2"}]
    path.write_bytes('"colour",count\r\n"dark\r\nblue",4\r\nred,2\r\n'.encode("utf-8-sig"))
    assert sr.read_csv_rows(str(path), 1) == [{"colour": "dark\r\nblue", "count": "4"}], "as staging reads it"
    path.write_bytes(b"colour,count\rblue,4\rred,2\r")  # old Mac line ends
    assert sr.read_csv_rows(str(path), 5) == [{"colour": "blue", "count": "4"}, {"colour": "red", "count": "2"}]
    with pytest.raises(SystemExit) as exit_info:
        sr.main(["--model", str(tmp_path), "--csv", str(path), "--rows", "0"])
    assert exit_info.value.code == 2
    assert "argument --rows: must be a positive integer, got 0" in capsys.readouterr().err


def test_conform_records_gives_a_model_the_number_kind_it_parses_and_leaves_other_records_alone() -> None:
    """int64 tonight -> float32 for the model and back (nearest whole number, halves to even, clipped to int64; NaN
    left out); text, absent features and features the model parses as the data holds them are untouched; blanks of
    the features given stand-in values get them."""
    from serving.feature_spec import FLOAT32, INT64, STRING, RawFeature, conform_records

    def example(**features: tf.train.Feature) -> bytes:
        return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()

    def floats(*values: float) -> tf.train.Feature:
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    def ints(*values: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    spec = {"i": RawFeature("i", INT64, (1,), False), "f": RawFeature("f", FLOAT32, (1,), True),
            "t": RawFeature("t", STRING, (1,), False)}
    text = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))
    records = [example(i=floats(2.5), f=ints(7), t=text), example(i=floats(-2.7)), example(i=floats(3.5, 1e19)),
               example(i=floats(-1e30)), example(i=floats(float("nan"))), example(t=text)]
    same_kinds = {"i": INT64, "f": FLOAT32, "t": STRING}
    assert conform_records(records, spec, same_kinds) is records  # nothing to convert: not even parsed
    out = [tf.train.Example.FromString(r).features.feature for r in
           conform_records(records, spec, {"i": FLOAT32, "f": INT64, "t": STRING})]
    assert [list(o["i"].int64_list.value) for o in out[:5]] == [[2], [-3], [4, 2**63 - 1], [-(2**63)], []]
    assert out[0]["f"].WhichOneof("kind") == "float_list" and list(out[0]["f"].float_list.value) == [7.0]
    assert out[0]["t"] == text and "i" not in out[5] and "f" not in out[5]
    empty = tf.train.Feature(float_list=tf.train.FloatList(value=[]))  # a blank as ExampleGen may write it
    filled = [tf.train.Example.FromString(r).features.feature for r in
              conform_records([example(t=text), example(i=ints(4)), example(i=empty)], spec, same_kinds,
                              {"i": 3, "t": b"y"})]
    assert [list(o["i"].int64_list.value) for o in filled] == [[3], [4], [3]]
    assert [list(o["t"].bytes_list.value) for o in filled] == [[b"x"], [b"y"], [b"y"]]
