"""Staging of every supported input source into ExampleGen's layout, and the clear errors on bad input."""

import csv
import gzip
import os

import numpy as np
import pytest

from model.features import natural_key
from pipeline import data


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_pixel_names_sort_in_pixel_order():
    names = data.pixel_names(784)
    assert names[0] == "px_000" and names[-1] == "px_783"
    assert sorted(names) == names == sorted(names, key=natural_key)
    assert sorted(["px_10", "px_2", "px_1"], key=natural_key) == ["px_1", "px_2", "px_10"]


def test_stage_default_digits(tmp_path):
    staged = data.stage("digits", str(tmp_path))
    rows = _read_csv(tmp_path / "data.csv")
    assert rows[0][:3] == ["id", "label", "px_00"] and len(rows[0]) == 66
    assert len(rows) - 1 == staged.num_rows == 1797
    assert staged.image_shape == (8, 8) and staged.has_label and staged.format == data.CSV
    assert staged.feature_names == tuple(data.pixel_names(64))
    pixels = np.array(rows[1][2:], dtype=float)
    assert pixels.min() >= 0 and pixels.max() <= 16


def test_restaging_unchanged_data_keeps_the_file(tmp_path):
    data.stage("digits", str(tmp_path))
    before = os.stat(tmp_path / "data.csv").st_mtime_ns
    data.stage("digits", str(tmp_path))
    assert os.stat(tmp_path / "data.csv").st_mtime_ns == before


def test_stage_npz_with_and_without_labels(tmp_path):
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    np.savez(tmp_path / "a.npz", images=images, labels=np.array([1, 2, 3], np.uint8))
    staged = data.stage(str(tmp_path / "a.npz"), str(tmp_path / "out_a"))
    rows = _read_csv(tmp_path / "out_a" / "data.csv")
    assert staged.image_shape == (4, 4) and staged.has_label
    assert rows[2][:3] == ["1", "2", "16"]
    np.savez(tmp_path / "b.npz", images=images)
    staged = data.stage(str(tmp_path / "b.npz"), str(tmp_path / "out_b"))
    assert not staged.has_label
    assert _read_csv(tmp_path / "out_b" / "data.csv")[0][:2] == ["id", "px_00"]


def test_stage_csv_finds_numeric_features(tmp_path):
    src = tmp_path / "table.csv"
    src.write_text("id,name,b,a,label\n1,x,0.5,2,0\n2,y,1.5,3,1\n")
    staged = data.stage(str(src), str(tmp_path / "staged"))
    assert staged.feature_names == ("a", "b")
    assert staged.has_label and staged.image_shape is None
    assert _read_csv(tmp_path / "staged" / "00000-table.csv") == [
        ["id", "label", "a", "b"], ["1", "0", "2", "0.5"], ["2", "1", "3", "1.5"]]
    assert staged.num_rows == 2


def test_csv_without_ids_gets_running_ids_across_files(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("x,y\n1,2\n3,4\n")
    (tmp_path / "in" / "b.csv").write_text("x,y\n5,6\n")
    staged = data.stage(str(tmp_path / "in"), str(tmp_path / "staged"))
    staged_files = sorted(os.listdir(tmp_path / "staged"))
    ids = [row[0] for name in staged_files for row in _read_csv(tmp_path / "staged" / name)[1:]]
    assert ids == ["0", "1", "2"] and staged.num_rows == 3


def test_a_column_constant_within_each_file_but_not_across_files_is_used(tmp_path):
    (tmp_path / "in").mkdir()  # a nightly export sharded by region: each file holds one region
    (tmp_path / "in" / "north.csv").write_text("x,region,channel\n1,north,web\n2,north,web\n")
    (tmp_path / "in" / "south.csv").write_text("x,region,channel\n3,south,web\n4,south,web\n")
    staged = data.stage(str(tmp_path / "in"), str(tmp_path / "staged"))
    kinds = {c.name: (c.kind, c.note) for c in staged.columns}
    assert kinds["region"][0] == data.CATEGORICAL, kinds
    assert kinds["channel"] == (data.DROPPED, "the same text value in every row"), kinds
    assert staged.feature_names == ("region", "x")


def test_stage_tfrecord(tmp_path):
    import tensorflow as tf

    path = str(tmp_path / "part.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(3):
            example = tf.train.Example(features=tf.train.Features(feature={
                "x1": tf.train.Feature(float_list=tf.train.FloatList(value=[i])),
                "x0": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
                "note": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"n"])),
            }))
            writer.write(example.SerializeToString())
    staged = data.stage(path, str(tmp_path / "staged"))
    assert staged.format == data.TFRECORD and staged.feature_names == ("x0", "x1") and not staged.has_label
    assert os.listdir(tmp_path / "staged") == ["00000-part.tfrecord"]


def test_spaces_after_commas_are_not_part_of_names_or_values_but_the_cluster_s_raw_csv_is_refused(tmp_path):
    """"x, y, label" as typed by hand: " label" had become a feature (the answer deciding the clusters) and " 0.5"
    text; Kubeflow's ExampleGen reads the raw file, so --columns-from refuses it."""
    rows = "".join(f"{i * 0.5}, {i % 2}, {('red', 'blue')[i % 2]}, {i % 3}\n" for i in range(12))
    (tmp_path / "t.csv").write_text("x, y, colour, label\n" + rows)
    staged = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged"))
    assert staged.has_label and staged.feature_names == ("colour", "x", "y")
    assert _read_csv(tmp_path / "staged" / "00000-t.csv")[1] == ["0", "0", "red", "0.0", "0"]
    with pytest.raises(data.DataError, match=r"t\.csv has spaces after the commas of its header \(' y'\)"):
        data.scan_csv_source(str(tmp_path / "t.csv"))


def test_a_column_named_like_a_model_output_is_dropped_or_refused_where_it_cannot_be(tmp_path):
    """BulkInferrer adds cluster, elbo, ... to each example and refuses one that has them (a 300-line traceback after
    training): staging leaves such a column out, a TFRecord input or the cluster's raw CSV (Kubeflow) is refused."""
    import tensorflow as tf

    rows = "".join(f"{i % 3},{i * 0.5},{i % 2}\n" for i in range(12))
    (tmp_path / "t.csv").write_text("cluster,x,features\n" + rows)
    staged = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged"))
    assert staged.feature_names == ("features", "x"), "'features' is the model input's name, not an output"
    assert [c.note for c in staged.columns if c.kind == "dropped"] == [
        "named like a model output (cluster, cluster_probabilities, latent_mean, elbo), which BulkInferrer adds to "
        "every example; rename it to use it"]
    with pytest.raises(data.DataError, match=r"t\.csv: column 'cluster' is named like a model output \(.*\), "
                                             r"which BulkInferrer adds to every example; rename it in the data\.$"):
        data.scan_csv_source(str(tmp_path / "t.csv"))
    with tf.io.TFRecordWriter(str(tmp_path / "part.tfrecord")) as writer:
        writer.write(tf.train.Example(features=tf.train.Features(feature={
            name: tf.train.Feature(float_list=tf.train.FloatList(value=[1.0])) for name in ("x", "elbo")})
        ).SerializeToString())
    with pytest.raises(data.DataError, match=r"part\.tfrecord: feature 'elbo' is named like a model output"):
        data.stage(str(tmp_path / "part.tfrecord"), str(tmp_path / "staged2"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("id,name\n1,x\n", "has no usable feature columns; name: the same text value in every row"),
        ("id,label\n1,0\n", "has no usable feature columns; it has only id and label columns"),
        ("a,b\n", "has a header but no data rows"),
        ("a,b\n1\n", "the first data row has 1 fields but the header has 2"),
        ("a;b;c\n1;2;3\n4;5;6\n", "has one column named 'a;b;c', which looks separated by semicolons, not commas"),
        ("5.1,3.5,0\n4.9,3.0,1\n", "starts with a row of values (5.1, 3.5, 0), not a header; add a first row naming"),
        ("0,0,5,13\n0,1,6,12\n", "starts with a row of values (0, 0, 5, ...), not a header; add a first row naming"),
        ("5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,setosa\n", "starts with a row of values (5.1, 3.5, 1.4, ...)"),
        ("a\tb\n1\t2\n", "which looks separated by tabs, not commas; save it as comma-separated values"),
        ("a,b\n1,2,\n3,4,\n", "the first data row has 3 fields but the header has 2; the extra fields are empty, as "
                              "when data lines end with a comma: remove those commas or name the column."),
        ("Preis, EUR;Menge;label\n3,5;2;0\n", "'s header and first data row split into more fields by semicolons "
                                              "than by commas, so it looks separated by them; save it as "
                                              "comma-separated values."),
        ("x;y,label\n1,5;2,0\n", "the first data row has 3 fields but the header has 2; it looks separated by "
                                 "semicolons, not commas: save it as comma-separated values."),
    ],
)
def test_bad_csv_is_refused_with_a_reason(tmp_path, content, message):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    with pytest.raises(data.DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.stage(str(src), str(tmp_path / "staged"))


def test_names_with_semicolons_or_bars_in_a_comma_separated_header_are_names(tmp_path):
    """Flattened pandas column levels ("sales|2023") are names when the data rows split by commas."""
    (tmp_path / "t.csv").write_text("x,a;b,c|d,label\n1,2,3,0\n2,1,4,1\n")
    assert data.stage(str(tmp_path / "t.csv"), str(tmp_path / "s")).feature_names == ("a;b", "c|d", "x")
    rows = "".join(f"{i * 7 % 11},{i % 3}\n" for i in range(30))
    (tmp_path / "m.csv").write_text("sales|2023|q1,sales|2023|q2\n" + rows)
    assert data.stage(str(tmp_path / "m.csv"), str(tmp_path / "s2")).feature_names == ("sales|2023|q1", "sales|2023|q2")


def test_digits_other_than_ascii_are_text_as_example_gen_reads_them(tmp_path):
    """float() reads full-width and Arabic-Indic digits, ExampleGen's CSV reader takes them for text."""
    rows = [["１２" if i % 2 else "３", "١٢٣" if i % 3 else "٤", i % 4] for i in range(30)]
    _write_rows(tmp_path / "t.csv", ["wide", "arabic", "x"], rows)
    kinds = {c.name: c.kind for c in data.stage(str(tmp_path / "t.csv"), str(tmp_path / "s")).columns}
    assert kinds == {"arabic": "categorical", "wide": "categorical", "x": "numeric"}


def test_a_gzip_compressed_csv_is_staged_as_plain_text_alone_and_beside_plain_ones(tmp_path):
    """A compressed export (``.csv.gz``, which batch scoring reads too) is a CSV, not a TFRecord; ExampleGen gets a
    decompressed copy, whose name loses the .gz."""
    table = "id,x,colour\n7,1.5,red\n8,,blue\n" + "".join(f"{i},{i},red\n" for i in range(10, 14))
    with gzip.open(tmp_path / "part.csv.gz", "wt", encoding="utf-8") as f:
        f.write(table)
    staged = data.stage(str(tmp_path / "part.csv.gz"), str(tmp_path / "one"))
    assert staged.format == data.CSV and staged.num_rows == 6 and staged.feature_names == ("colour", "x")
    assert os.listdir(tmp_path / "one") == ["00000-part.csv"]
    assert _read_csv(tmp_path / "one" / "00000-part.csv")[:3] == [["id", "colour", "x"], ["7", "red", "1.5"],
                                                                  ["8", "blue", ""]]
    (tmp_path / "lake").mkdir()
    os.replace(tmp_path / "part.csv.gz", tmp_path / "lake" / "a.csv.gz")
    (tmp_path / "lake" / "b.csv").write_text("id,x,colour\n9,2.5,red\n")
    staged = data.stage(str(tmp_path / "lake"), str(tmp_path / "two"))
    assert staged.num_rows == 7 and sorted(os.listdir(tmp_path / "two")) == ["00000-a.csv", "00001-b.csv"]


def test_a_csv_in_another_encoding_is_refused_with_how_to_save_it(tmp_path):
    (tmp_path / "t.csv").write_bytes("caf\u00e9,x\n1,2\n".encode("cp1252"))
    with pytest.raises(data.DataError, match=r"t\.csv is not UTF-8 text \(.*\); save it as UTF-8 CSV"):
        data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged"))


def test_a_parquet_file_is_staged_as_csv_with_each_value_as_batch_scoring_reads_it(tmp_path):
    """Numbers, text with nulls, booleans (text "True"/"False", as batch scoring's str()), NaN as a blank, dates
    dropped as dates; the label named by --label-column; the copy is a CSV ExampleGen reads."""
    import pandas as pd

    n = 30
    frame = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "target": [i % 3 for i in range(n)],
        "spend": [float(i) if i != 4 else float("nan") for i in range(n)],
        "visits": list(range(100, 100 + n))[::-1],
        "plan": [None if i == 2 else ("gold", "basic")[i % 2] for i in range(n)],
        "active": [i % 2 == 0 for i in range(n)],
        "joined": pd.date_range("2024-01-01", periods=n),
    })
    frame.to_parquet(tmp_path / "customers.parquet")
    staged = data.stage(str(tmp_path / "customers.parquet"), str(tmp_path / "staged"), label_column="target")
    kinds = {c.name: (c.kind, c.missing) for c in staged.columns}
    assert kinds == {"active": ("categorical", 0), "customer_id": ("dropped", 0), "joined": ("dropped", 0),
                     "plan": ("categorical", 1), "spend": ("numeric", 1), "visits": ("numeric", 0)}
    assert staged.has_label and staged.num_rows == n and os.listdir(tmp_path / "staged") == ["00000-customers.csv"]
    rows = _read_csv(tmp_path / "staged" / "00000-customers.csv")
    assert rows[0] == ["id", "label", "active", "plan", "spend", "visits"]
    assert rows[1] == ["0", "0", "True", "gold", "0.0", "129"] and rows[3][3] == "" and rows[5][4] == ""
    from serving.feature_spec import STRING, RawFeature, to_value

    scored = [to_value(value, RawFeature("f", STRING, optional=True)) for value in (True, None, "gold")]
    assert scored == [b"True", None, b"gold"], "batch scoring reads the Parquet values as training saw them"


def test_parquet_and_csv_files_of_one_directory_are_staged_together(tmp_path):
    import pandas as pd

    (tmp_path / "lake").mkdir()
    pd.DataFrame({"x": [1.5, 2.5, 3.5], "y": [1, 2, 2]}).to_parquet(tmp_path / "lake" / "a.pq")
    (tmp_path / "lake" / "b.csv").write_text("x,y\n4.5,1\n")
    staged = data.stage(str(tmp_path / "lake"), str(tmp_path / "staged"))
    assert staged.num_rows == 4 and sorted(os.listdir(tmp_path / "staged")) == ["00000-a.csv", "00001-b.csv"]


def test_a_glob_of_table_files_across_folders_is_staged_and_one_that_matches_none_is_refused(tmp_path):
    """``lake/*/part.csv`` as batch scoring takes it; before, the pattern was opened as a file (a traceback)."""
    for month, value in (("2026-11", 1.5), ("2026-12", 2.5)):
        (tmp_path / month).mkdir()
        (tmp_path / month / "part.csv").write_text(f"x,y\n{value},1\n{value},2\n")
    staged = data.stage(str(tmp_path / "*" / "part.csv"), str(tmp_path / "staged"))
    assert staged.num_rows == 4 and sorted(os.listdir(tmp_path / "staged")) == ["00000-part.csv", "00001-part.csv"]
    with pytest.raises(data.DataError, match=r"/\* matches no \.csv, \.csv\.gz or \.parquet files\.$"):
        data.stage(str(tmp_path / "*"), str(tmp_path / "staged2"))


def test_a_parquet_file_that_does_not_read_is_refused_in_one_sentence(tmp_path):
    (tmp_path / "t.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(data.DataError, match=r"t\.parquet is not a readable Parquet file \(Parquet magic bytes not "
                                             r"found in footer\)\.$"):
        data.stage(str(tmp_path / "t.parquet"), str(tmp_path / "staged"))


@pytest.mark.parametrize(("values", "message"), [
    ([b"ok", b"\xff"], r"row 2, column v: bytes that are not UTF-8 text; store the column as text or leave it out\."),
    (["ok", "a\0b"], r"row 2, column v: text with a NUL character, which a CSV cannot carry; remove it\."),
], ids=["binary", "nul"])
def test_parquet_values_a_csv_cannot_carry_as_batch_scoring_reads_them_stop_staging(tmp_path, values, message):
    import pandas as pd

    pd.DataFrame({"x": [1.0, 2.0], "v": values}).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(data.DataError, match=message):
        data.stage(str(tmp_path / "t.parquet"), str(tmp_path / "staged"))


def test_a_decimal_parquet_column_is_a_number_in_training_and_in_scoring(tmp_path):
    """Database exports keep money as decimals: staged as their text, and parsed from it at scoring too."""
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from serving.feature_spec import FLOAT32, RawFeature, to_number

    prices = [Decimal(f"{i}.50") for i in range(12)]
    pq.write_table(pa.table({"price": pa.array(prices, pa.decimal128(6, 2)), "n": list(range(12))[::-1]}),
                   tmp_path / "t.parquet")
    staged = data.stage(str(tmp_path / "t.parquet"), str(tmp_path / "staged"))
    assert {c.name: c.kind for c in staged.columns} == {"n": "numeric", "price": "numeric"}
    assert _read_csv(tmp_path / "staged" / "00000-t.csv")[1] == ["0", "11", "0.50"]
    assert to_number(prices[1], RawFeature("price", FLOAT32)) == 1.5


_NUMBERS = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(2000))


@pytest.mark.parametrize(("content", "message"), [(b"a,b\n1,2\n", "Not a gzipped file"),
                                                  (gzip.compress(_NUMBERS)[:2000], "it ends early|ended")],
                         ids=["not-gzip", "cut-short"])
def test_a_csv_gz_that_does_not_decompress_is_refused_in_one_sentence(tmp_path, content, message):
    (tmp_path / "t.csv.gz").write_bytes(content)
    with pytest.raises(data.DataError, match=rf"t\.csv\.gz cannot be decompressed as gzip \(.*({message}).*\); "
                                             "compress it again or give the plain CSV"):
        data.stage(str(tmp_path / "t.csv.gz"), str(tmp_path / "staged"))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("1,2\n" * 10 + "3,abc\n", "line 12, column b: 'abc' is not a number but 91% of the column's values are"),
        ("1,2\n-inf,4\n", "line 3, column a: '-inf' is not finite but 50% of the column's values are finite"),
        ("1,2\n3,4,5\n", "line 3 has 3 fields but the header has 2"),
    ],
    ids=["text-in-numbers", "inf", "extra-field"],
)
def test_an_invalid_later_row_stops_staging_with_its_line(tmp_path, rows, message):
    src = tmp_path / "t.csv"
    src.write_text("a,b\n" + rows)
    with pytest.raises(data.DataError, match=message):
        data.stage(str(src), str(tmp_path / "staged"))
    assert os.listdir(tmp_path / "staged") == [], "nothing half-written is left for ExampleGen"


def test_class_names_in_the_label_column_are_staged_as_they_are(tmp_path):
    """Labels only score the clusters (as categories), so a label of class names is kept, not refused."""
    src = tmp_path / "iris.csv"
    src.write_text("sepal,petal,label\n5.1,1.4,setosa\n7.0,4.7,versicolor\n6.3,6.0,virginica\n")
    staged = data.stage(str(src), str(tmp_path / "staged"))
    assert staged.has_label and staged.feature_names == ("petal", "sepal")
    assert [row[1] for row in _read_csv(tmp_path / "staged" / "00000-iris.csv")] == [
        "label", "setosa", "versicolor", "virginica"]


@pytest.mark.parametrize("missing", ["", "NA", "?"])
def test_a_row_without_a_label_stops_staging_with_its_line(tmp_path, missing):
    src = tmp_path / "t.csv"
    src.write_text(f"x,label\n1,setosa\n2,{missing}\n")
    with pytest.raises(data.DataError,
                       match=r"t.csv, line 3: the label \('label'\) is missing .*; give every row a label .* or rem"):
        data.stage(str(src), str(tmp_path / "staged"))
    assert os.listdir(tmp_path / "staged") == [], "nothing half-written is left for ExampleGen"


def test_spreadsheet_placeholders_are_missing_values_and_the_cluster_s_raw_csv_must_leave_them_empty(tmp_path):
    """Excel's #N/A and error values are missing values, as are pandas' NA spellings: a numeric column with 20% of
    them had been taken for free text and dropped. Kubeflow's ExampleGen reads the raw file, where a spelled missing
    value is text or NaN, so --columns-from refuses it. A dash is a value (a +/- class), named in the report."""
    spelled = ["#N/A", "#DIV/0!", " NA", "<NA>", "nan"]
    rows = [[spelled[i // 4 % 5] if i % 4 == 0 else str(i * 0.5), i % 2] for i in range(60)]
    _write_rows(tmp_path / "t.csv", ["income", "label"], rows)
    staged = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged"))
    income = next(c for c in staged.columns if c.name == "income")
    assert (income.kind, income.missing) == ("numeric", 15)
    staged_rows = _read_csv(tmp_path / "staged" / "00000-t.csv")
    assert [row[2] for row in staged_rows[1:22:4]] == ["", "", "", "", "", ""], "every spelling written empty"
    with pytest.raises(data.DataError, match=r"t\.csv, line 2, column income: the missing value is written '#N/A', "
                                             r"which the cluster's CsvExampleGen does not read as missing; leave "
                                             r"missing values empty\.$"):
        data.scan_csv_source(str(tmp_path / "t.csv"))
    _write_rows(tmp_path / "blank.csv", ["income", "label"], [["" if i % 5 == 0 else i, i % 2] for i in range(60)])
    assert [c.missing for c in data.scan_csv_source(str(tmp_path / "blank.csv"))] == [12]
    signs = [[("+", "-")[i % 2], ("-", "+")[i % 3 == 0], i % 4] for i in range(40)]
    _write_rows(tmp_path / "crx.csv", ["a16", "strand", "x"], signs)
    staged = data.stage(str(tmp_path / "crx.csv"), str(tmp_path / "s2"), label_column="a16")
    assert staged.has_label and [c.describe() for c in staged.columns][0] == (
        "strand: categorical, 2 categories (one-hot), none missing")


def test_numbers_with_a_placeholder_text_are_named_as_such(tmp_path):
    """A number column with "-" (or "n.a.") for none: 15% of them had been called free text; few values, categories."""
    rows = [["-" if i % 7 == 0 else str(i * 0.37), "n.a." if i % 9 == 0 else str(i % 5), i % 2] for i in range(80)]
    _write_rows(tmp_path / "t.csv", ["f1", "grade", "x"], rows)
    notes = {c.name: (c.kind, c.note) for c in data.stage(str(tmp_path / "t.csv"), str(tmp_path / "s")).columns}
    assert notes["f1"] == ("dropped", "numbers mixed with the text '-' in 15% of the values; write missing values as "
                                      "empty fields (or NA) to use the column as numbers")
    assert notes["grade"] == ("categorical", "6 categories (one-hot), none missing; numbers mixed with the text 'n.a.' "
                                             "in 11% of the values taken as categories: write missing values as empty "
                                             "fields (or NA) to use the column as numbers")


def test_text_and_missing_values_are_staged_and_reported(tmp_path):
    src = tmp_path / "mixed.csv"
    src.write_text("id,size,colour,note,empty,label\n"
                   "1,2.5,red,first,,0\n2,,blue,second,NA,1\n3,4,,third,,0\n4,nan,red,fourth,?,1\n")
    staged = data.stage(str(src), str(tmp_path / "staged"))
    assert staged.feature_names == ("colour", "size")
    kinds = {c.name: (c.kind, c.missing) for c in staged.columns}
    assert kinds == {"colour": ("categorical", 1), "size": ("numeric", 2), "note": ("dropped", 0),
                     "empty": ("dropped", 4)}
    assert _read_csv(tmp_path / "staged" / "00000-mixed.csv") == [
        ["id", "label", "colour", "size"], ["1", "0", "red", "2.5"], ["2", "1", "blue", ""], ["3", "0", "", "4"],
        ["4", "1", "red", ""]]
    report = "\n".join(data.column_report(staged.columns))
    assert "colour: categorical, 2 categories (one-hot), 1 missing (a slot shared with unseen categories)" in report
    assert "size: numeric, 2 missing (imputed: mean + indicator)" in report
    assert "note: dropped, a different text value in every row (an identifier or free text)" in report
    assert "empty: dropped, every value is missing" in report


def test_many_columns_are_summarised_in_the_report():
    columns = [data.Column(f"x{i}", data.NUMERIC, i % 2, "n") for i in range(40)]
    columns.append(data.Column("t", data.DROPPED, 0, "free text"))
    report = data.column_report(columns)
    assert report[0] == "  40 numeric columns" and report[1].startswith("  20 with missing values (imputed): x1, x3")
    assert report[-1] == "  t: dropped, free text" and len(report) == 3


def test_numbers_that_count_up_can_name_columns(tmp_path):
    """Years or wavelengths as column names are a header; a first row of data does not count up."""
    (tmp_path / "t.csv").write_text("400.5,401.5,402.5\n" + "".join(f"{i % 3},{i % 5},{i % 2}\n" for i in range(9)))
    assert data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged")).feature_names == ("400.5", "401.5", "402.5")


def test_a_spreadsheet_workbook_is_refused_with_how_to_export_it(tmp_path):
    (tmp_path / "sales.xlsx").write_bytes(b"PK\x03\x04 a zip archive")
    with pytest.raises(data.DataError, match=r"sales\.xlsx is a spreadsheet workbook; export the sheet as CSV UTF-8"):
        data.stage(str(tmp_path / "sales.xlsx"), str(tmp_path / "staged"))


def test_a_file_that_is_not_csv_at_all_is_refused(tmp_path):
    src = tmp_path / "picture.csv"
    src.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(data.DataError, match="is not UTF-8 text"):
        data.stage(str(src), str(tmp_path / "staged"))


def test_repeated_column_names_are_refused(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(data.DataError, match="repeats the column names a"):
        data.stage(str(src), str(tmp_path / "staged"))


def test_missing_input_is_refused(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.stage(str(tmp_path / "nope.csv"), str(tmp_path / "staged"))


def test_bad_npz_is_refused(tmp_path):
    np.savez(tmp_path / "x.npz", pictures=np.zeros((2, 2, 2)))
    with pytest.raises(data.DataError, match=r"has no 'images' array \(found: pictures\); save the images as "
                                             r"'images' and any classes as 'labels', e\.g\. np\.savez\("):
        data.stage(str(tmp_path / "x.npz"), str(tmp_path / "staged"))
    (tmp_path / "y.npz").write_bytes(b"not a zip")
    with pytest.raises(data.DataError, match="is not a readable .npz file"):
        data.stage(str(tmp_path / "y.npz"), str(tmp_path / "staged"))


@pytest.mark.parametrize(("images", "message"), [
    (np.zeros((2, 4, 4, 3)), r"are colour images \(2, 4, 4, 3\), and the model reads grey ones \[N, height, width\]; "
                             r"save them as grey, e\.g\. images\.mean\(axis=-1\)\.$"),
    (np.where(np.arange(32).reshape(2, 4, 4) == 20, np.nan, 1.0),
     r"'images' hold 1 NaN or infinite pixel values \(the first in image 1\); fill or drop those images\.$"),
    (np.full((2, 4, 4), "a"), r"'images' must hold numbers, not <U1\.$"),
], ids=["colour", "nan", "text"])
def test_images_the_model_cannot_read_are_refused_in_one_sentence(tmp_path, images, message):
    np.savez(tmp_path / "x.npz", images=images)
    with pytest.raises(data.DataError, match=message):
        data.stage(str(tmp_path / "x.npz"), str(tmp_path / "staged"))


def test_grey_images_with_a_channel_axis_are_read_as_grey_images(tmp_path):
    """Keras keeps grey images as [N, height, width, 1]; they are the same images as [N, height, width]."""
    images = np.arange(48, dtype=np.uint8).reshape(3, 4, 4)
    np.savez(tmp_path / "keras.npz", images=images[..., None], labels=np.array([0, 1, 0]))
    np.savez(tmp_path / "flat.npz", images=images, labels=np.array([0, 1, 0]))
    assert data.stage(str(tmp_path / "keras.npz"), str(tmp_path / "a")).image_shape == (4, 4)
    data.stage(str(tmp_path / "flat.npz"), str(tmp_path / "b"))
    assert _read_csv(tmp_path / "a" / "data.csv") == _read_csv(tmp_path / "b" / "data.csv")


def test_image_labels_may_be_class_names_or_whole_floats(tmp_path):
    """The evaluator reads labels as categories, as a CSV's; names had ended in int()'s ValueError traceback."""
    images = np.zeros((3, 4, 4), np.uint8)
    np.savez(tmp_path / "names.npz", images=images, labels=np.array(["cat", "dog", "cat"]))
    np.savez(tmp_path / "floats.npz", images=images, labels=np.array([1.0, 2.0, 1.5]))
    np.savez(tmp_path / "nan.npz", images=images, labels=np.array([1.0, np.nan, 1.5]))
    with pytest.raises(data.DataError, match=r"'labels' hold NaN or infinite values; give every image a label"):
        data.stage(str(tmp_path / "nan.npz"), str(tmp_path / "c"))
    data.stage(str(tmp_path / "names.npz"), str(tmp_path / "a"))
    data.stage(str(tmp_path / "floats.npz"), str(tmp_path / "b"))
    assert [row[1] for row in _read_csv(tmp_path / "a" / "data.csv")] == ["label", "cat", "dog", "cat"]
    assert [row[1] for row in _read_csv(tmp_path / "b" / "data.csv")] == ["label", "1", "2", "1.5"]


def test_a_file_named_tfrecord_that_is_not_one_is_refused(tmp_path):
    src = tmp_path / "part.tfrecord"
    src.write_bytes(b"this is not a TFRecord file at all" * 10)
    with pytest.raises(data.DataError, match=r"part.tfrecord is not a readable TFRecord file \("):
        data.stage(str(src), str(tmp_path / "staged"))


def test_an_empty_tfrecord_file_is_refused(tmp_path):
    src = tmp_path / "part.tfrecord"
    src.write_bytes(b"")
    with pytest.raises(data.DataError, match="part.tfrecord holds no records"):
        data.stage(str(src), str(tmp_path / "staged"))


def test_staging_refuses_a_folder_holding_the_users_files_and_deletes_nothing(tmp_path):
    """`--output-root .` in a project with its own data/ folder: stop with one sentence, every file kept."""
    project = tmp_path / "project"
    (project / "data" / "raw").mkdir(parents=True)
    (project / "data" / "notes.txt").write_text("mine")
    table = project / "table.csv"
    table.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(data.DataError, match=r"holds files the run did not stage \(notes.txt, raw\)"):
        data.stage(str(table), str(project / "data"))
    assert sorted(os.listdir(project / "data")) == ["notes.txt", "raw"]


def test_staging_refuses_an_input_inside_its_folder(tmp_path):
    (tmp_path / "data").mkdir()
    inside = tmp_path / "data" / "mytable.csv"
    inside.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(data.DataError, match="lies inside .*the folder the run stages its data in"):
        data.stage(str(inside), str(tmp_path / "data"))
    assert inside.read_text() == "a,b\n1,2\n3,4\n"


def test_restaging_other_data_replaces_the_earlier_staged_files(tmp_path):
    (tmp_path / "one.csv").write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "two.csv").write_text("a,b\n5,6\n7,8\n")
    data.stage(str(tmp_path / "one.csv"), str(tmp_path / "staged"))
    data.stage(str(tmp_path / "two.csv"), str(tmp_path / "staged"))
    assert os.listdir(tmp_path / "staged") == ["00000-two.csv"]
    data.stage("digits", str(tmp_path / "staged"))
    assert os.listdir(tmp_path / "staged") == ["data.csv"]


def test_a_missing_input_creates_no_staging_folder(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.stage(str(tmp_path / "none.csv"), str(tmp_path / "staged"))
    assert not (tmp_path / "staged").exists()


def test_a_byte_order_mark_does_not_hide_the_label_column(tmp_path):
    """Spreadsheet programs write a UTF-8 byte-order mark; `label` must still be the label, not a feature."""
    src = tmp_path / "excel.csv"
    src.write_bytes("label,x,y\n0,1,2\n1,3,4\n".encode("utf-8-sig"))
    staged = data.stage(str(src), str(tmp_path / "staged"))
    assert staged.has_label and staged.feature_names == ("x", "y")
    assert _read_csv(tmp_path / "staged" / "00000-excel.csv")[0] == ["id", "label", "x", "y"]


def test_an_unnamed_index_column_is_dropped_with_a_reason(tmp_path):
    """pandas' ``to_csv`` writes its row index as a first column without a name: a row number, not a feature."""
    src = tmp_path / "pandas.csv"
    src.write_text(",x,y,label\n0,1.5,2,0\n1,3.5,4,1\n2,5.5,1,0\n")
    staged = data.stage(str(src), str(tmp_path / "staged"))
    assert staged.feature_names == ("x", "y") and staged.has_label
    assert "  (no name): dropped, no name in the header (a row index, such as pandas' to_csv writes by default)" in (
        data.column_report(staged.columns))
    assert _read_csv(tmp_path / "staged" / "00000-pandas.csv")[0] == ["id", "label", "x", "y"]


def _write_rows(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def test_an_empty_last_column_from_lines_ending_with_a_comma_is_dropped_as_such(tmp_path):
    (tmp_path / "t.csv").write_text("x,y,label,\n1,2,0,\n3,1,1,\n")
    staged = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "s"))
    assert staged.feature_names == ("x", "y")
    assert [c.note for c in staged.columns if c.kind == "dropped"] == [
        "no name in the header and no values (as when every line ends with a comma)"]


def test_row_numbers_and_sequential_ids_are_dropped_with_the_reason(tmp_path):
    """A pandas index saved back ("Unnamed: 0") or an auto-increment key is not a feature; near misses stay features."""
    rows = [[i, 1000 + i, 30 - i, i + (i == 7), 0.5 * i, i % 3] for i in range(30)]
    _write_rows(tmp_path / "t.csv", ["Unnamed: 0", "customer_id", "rank", "gap", "half", "group"], rows)
    staged = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged"))
    kinds = {c.name: (c.kind, c.note) for c in staged.columns}
    assert kinds["Unnamed: 0"] == ("dropped", "whole numbers 0..29 counting up by one from row to row (a row number "
                                              "or a sequential identifier)")
    assert kinds["customer_id"][0] == "dropped" and "1000..1029" in kinds["customer_id"][1]
    assert staged.feature_names == ("gap", "group", "half", "rank"), "counting down, a repeat, halves: features"


def test_unique_whole_numbers_in_a_column_named_like_an_identifier_are_dropped_as_a_key(tmp_path):
    """A customer_id of random account numbers is a key in any order; a repeat, a fraction, another name or a short
    table keeps the column."""
    order = np.random.default_rng(0).permutation(30)
    rows = [[70_000 + 37 * int(j), 500 + int(j), int(j) % 7, 1000 + int(j), i % 3, 9 * int(j)]
            for i, j in enumerate(order)]
    _write_rows(tmp_path / "t.csv", ["customer_id", "income", "store_id", "userKey", "x", "account_number "], rows)
    staged = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged"))
    notes = {c.name: c.note for c in staged.columns if c.kind == "dropped"}
    assert notes == dict.fromkeys(("account_number ", "customer_id", "userKey"), (
        "whole numbers, a different one in every row, in a column named like an identifier (a key); rename it to use "
        "it as a number"))
    assert staged.feature_names == ("income", "store_id", "x")
    (tmp_path / "lake").mkdir()
    _write_rows(tmp_path / "lake" / "a.csv", ["account id", "x"], [[i * 7, i % 2] for i in range(15)])
    _write_rows(tmp_path / "lake" / "b.csv", ["account id", "x"], [[i * 7 + 3, i % 2] for i in range(14)] + [[0, 1]])
    assert data.stage(str(tmp_path / "lake"), str(tmp_path / "s2")).feature_names == ("account id", "x"), \
        "0 is in both files: a repeat"


def test_whole_numbers_beyond_int64_are_text_as_example_gen_reads_them(tmp_path):
    """ExampleGen's CSV reader takes an integer that int64 cannot hold for text; staging must not call the column
    numeric (every scored row was dead-lettered), and one such value in a numeric column is refused in one
    sentence."""
    hashes = [str(2**64 - 1 - 7919 * i) for i in range(60)]
    rows = [[h, i % 3, i % 2, str(2**63 + i % 2)] for i, h in enumerate(hashes)]
    _write_rows(tmp_path / "t.csv", ["fingerprint", "x", "label", "tier"], rows)
    staged = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged"))
    kinds = {c.name: (c.kind, c.note) for c in staged.columns}
    assert kinds["fingerprint"] == ("dropped", "more than 50 distinct text values (free text or an identifier)")
    assert kinds["tier"] == ("categorical", "2 categories (one-hot), none missing"), "as ExampleGen reads it: text"
    assert staged.feature_names == ("tier", "x")
    _write_rows(tmp_path / "mixed.csv", ["big", "x"], [[2**63 if i == 40 else i * 3, i % 2] for i in range(60)])
    with pytest.raises(data.DataError, match=r"line 42, column big: '9223372036854775808' is a whole number beyond the "
                                             r"64-bit range, which the pipeline reads as text, but 98% .* fix the "):
        data.stage(str(tmp_path / "mixed.csv"), str(tmp_path / "s2"))
    _write_rows(tmp_path / "edge.csv", ["v", "x"], [[2**63 - 1 if i == 5 else -(2**63), i % 2] for i in range(30)])
    assert data.stage(str(tmp_path / "edge.csv"), str(tmp_path / "s3")).feature_names == ("v", "x"), "int64 bounds"


def test_row_numbers_over_the_files_of_a_directory_are_dropped_and_a_repeat_keeps_them(tmp_path):
    """Shards that go on counting or each count from 0 hold row numbers; a file where the count stalls does not."""
    for folder, first, second in (("joined", range(15, 30), range(15)), ("restarting", range(15), range(15)),
                                  ("stalled", range(15), [*range(14), 13])):
        (tmp_path / folder).mkdir()
        _write_rows(tmp_path / folder / "a.csv", ["row", "x"], [[i, i % 4] for i in first])
        _write_rows(tmp_path / folder / "b.csv", ["row", "x"], [[i, i % 5] for i in second])
    assert data.stage(str(tmp_path / "joined"), str(tmp_path / "s1")).feature_names == ("x",)
    assert data.stage(str(tmp_path / "restarting"), str(tmp_path / "s2")).feature_names == ("x",)
    assert data.stage(str(tmp_path / "stalled"), str(tmp_path / "s3")).feature_names == ("row", "x")


def test_a_short_table_keeps_a_counting_column(tmp_path):
    """Below `MIN_ROWS_FOR_ROW_NUMBERS` rows, a counting column can be a real feature (ages 30..34)."""
    rows = [[30 + i, i % 2] for i in range(data.MIN_ROWS_FOR_ROW_NUMBERS - 1)]
    _write_rows(tmp_path / "t.csv", ["age", "x"], rows)
    assert data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged")).feature_names == ("age", "x")


def test_numbers_exported_with_formatting_are_named_as_such_when_dropped(tmp_path):
    """A spreadsheet's "12,345", "63%" or "$1,200.50" is text; the report says so instead of calling it free text."""
    rows = [[f"{100 + 37 * i:,}", f"{i}%", f"${i:,}.50", f"+44 20 {7000 + i} {1000 + i}", i % 3] for i in range(60)]
    _write_rows(tmp_path / "t.csv", ["income", "share", "price", "phone", "x"], rows)
    staged = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged"))
    notes = {c.name: c.note for c in staged.columns if c.kind == "dropped"}
    assert notes["income"] == ("numbers written as text ('1,025': thousands separators, decimal commas, currency "
                               "signs or %); save "
                               "them as plain numbers (1234.5) to use the column"), "plain 100..988 as well"
    assert "'0%'" in notes["share"] and "'$0.50'" in notes["price"]
    assert notes["phone"] == "more than 50 distinct text values (free text or an identifier)", "not numbers to use"
    assert staged.feature_names == ("x",)


def test_few_numbers_written_as_text_are_categories_and_the_note_says_how_to_use_them_as_numbers(tmp_path):
    """Four price levels "1,000" .. "12,000", shares "10%" and decimal commas "0,5" are one-hot categories (their order
    is lost), and the column report says so and how to keep them numbers."""
    rows = [[f"{(1000, 2500, 5000, 12000)[i % 4]:,}", f"{10 * (i % 3 + 1)}%", f"{i % 5},5", ("a1", "b2")[i % 2], i]
            for i in range(40)]
    _write_rows(tmp_path / "t.csv", ["price", "share", "rating", "code", "x"], rows)
    notes = {c.name: (c.kind, c.note) for c in data.stage(str(tmp_path / "t.csv"), str(tmp_path / "s")).columns}
    assert notes["price"] == ("categorical", "4 categories (one-hot), none missing; numbers written as text ('1,000': "
                              "thousands separators, decimal commas, currency signs or %) taken as categories, so "
                              "their order is not used: save them as plain numbers (1234.5) to use them as numbers")
    assert "('10%':" in notes["share"][1] and "('0,5':" in notes["rating"][1]
    assert notes["code"] == ("categorical", "2 categories (one-hot), none missing"), "text, not formatted numbers"


def test_dates_are_named_as_dates_when_dropped_and_a_few_stay_categories(tmp_path):
    """ISO dates, day/month/year and timestamps have too many values for a category; the note says they are dates."""
    rows = [[f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}", f"{1 + i % 28}/{1 + i % 12}/2023",
             f"2024-03-{1 + i % 28:02d}T10:{i % 60:02d}:00Z", f"2024-0{1 + i % 3}-01", f"2024 order {i}", i % 3]
            for i in range(60)]
    _write_rows(tmp_path / "t.csv", ["signup", "birthday", "seen_at", "quarter", "order", "x"], rows)
    staged = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "staged"))
    notes = {c.name: c.note for c in staged.columns if c.kind == "dropped"}
    assert notes["signup"] == ("dates ('2024-01-01'); derive a number from them, such as days since the date, to use "
                               "the column")
    assert notes["birthday"].startswith("dates ('1/1/2023')") and notes["seen_at"].startswith("dates (")
    assert notes["order"] == "more than 50 distinct text values (free text or an identifier)"
    assert set(staged.feature_names) == {"quarter", "x"}, "three dates are three categories"


def test_a_named_label_column_is_staged_as_the_label_and_is_no_feature(tmp_path):
    """scikit-learn's frames call the classes 'target', iris files 'species': named, it scores and is not clustered."""
    _write_rows(tmp_path / "t.csv", ["sepal", "species", "petal"],
                [[5.1, "setosa", 1.4], [7.0, "versicolor", 4.7], [5.0, "setosa", 1.3]])
    unnamed = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "s1"))
    assert "species" in unnamed.feature_names and data.label_like_columns(unnamed) == ["species"]
    with pytest.raises(data.DataError, match="the 'id' column identifies rows and cannot be the label"):
        data.stage(str(tmp_path / "t.csv"), str(tmp_path / "s3"), label_column="id")
    named = data.stage(str(tmp_path / "t.csv"), str(tmp_path / "s2"), label_column="species")
    assert named.has_label and named.feature_names == ("petal", "sepal") and data.label_like_columns(named) == []
    assert _read_csv(tmp_path / "s2" / "00000-t.csv") == [
        ["id", "label", "petal", "sepal"], ["0", "setosa", "1.4", "5.1"], ["1", "versicolor", "4.7", "7.0"],
        ["2", "setosa", "1.3", "5.0"]]


def test_the_row_number_note_spans_every_file(tmp_path):
    """Files counting 0..24 and 5..9: the note names the whole span, 0..24."""
    (tmp_path / "d").mkdir()
    _write_rows(tmp_path / "d" / "a.csv", ["row", "x"], [[i, i % 4] for i in range(25)])
    _write_rows(tmp_path / "d" / "b.csv", ["row", "x"], [[i, i % 3] for i in range(5, 10)])
    (row,) = [c for c in data.stage(str(tmp_path / "d"), str(tmp_path / "s")).columns if c.name == "row"]
    assert row.kind == "dropped" and row.note.startswith("whole numbers 0..24 counting up")
