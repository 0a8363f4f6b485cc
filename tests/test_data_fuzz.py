"""Fuzzing the CSV ingest: any text either stages clean (numeric columns finite or empty, text columns as
categories) or fails with a one-sentence DataError."""

import csv
import math
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import data

CELLS = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "inf", "-inf", "abc", "1e999", " 3", "0x10", '"1"', "1,2", "\\n"]),
    st.text(max_size=5),
)
ROWS = st.lists(st.lists(CELLS, min_size=0, max_size=5), min_size=0, max_size=8)
HEADERS = st.lists(st.sampled_from(["a", "b", "c", "id", "label", "px_0", ""]), min_size=0, max_size=5)

RAN = {"cases": 0}


@pytest.fixture(scope="module", autouse=True)
def report_case_count():
    yield
    print(f"\nCSV ingest fuzz cases run: {RAN['cases']}")


def _write(path: str, header: list[str], rows: list[list[str]]) -> None:
    """Raw text, cells joined by commas without quoting: malformed CSV is part of the point."""
    lines = ([",".join(header)] if header else []) + [",".join(row) for row in rows]
    with open(path, "w", newline="") as f:
        f.write("\n".join(lines) + "\n")


def _data_rows(path: str) -> list[list[str]]:
    with open(path, newline="") as f:
        return [row for row in list(csv.reader(f))[1:] if row]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=HEADERS, rows=ROWS)
def test_fuzzed_csv_is_staged_clean_or_refused_clearly(header, rows):
    RAN["cases"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.csv")
        _write(src, header, rows)
        try:
            staged = data.stage(src, os.path.join(tmp, "staged"))
        except data.DataError as err:
            assert str(err).strip() and "\n" not in str(err).strip()
            return
        (name,) = os.listdir(staged.input_dir)
        with open(os.path.join(staged.input_dir, name), newline="") as f:
            out = list(csv.reader(f))
        assert len(out) - 1 == staged.num_rows == len(_data_rows(src)), "every input row is staged or refused"
        kinds = {c.name: c.kind for c in staged.columns}
        assert set(staged.feature_names) == {name for name, kind in kinds.items() if kind != data.DROPPED}
        for row in out[1:]:
            for column, value in zip(out[0], row, strict=True):
                if kinds.get(column) == data.NUMERIC:
                    assert value == "" or math.isfinite(float(value)), "numeric: a finite number or missing"
                elif kinds.get(column) == data.CATEGORICAL:
                    assert value == "" or not data.is_missing(value), "missing spellings are staged as empty"


@settings(max_examples=100, deadline=None)
@given(blob=st.binary(min_size=0, max_size=200))
def test_fuzzed_bytes_never_crash_the_ingest(blob):
    RAN["cases"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.csv")
        with open(src, "wb") as f:
            f.write(blob)
        try:
            staged = data.stage(src, os.path.join(tmp, "staged"))
        except data.DataError:
            return
        assert staged.feature_names
