"""Bring a user's data source into the one layout ExampleGen reads: a directory of CSV or TFRecord files.

Sources: the bundled default (scikit-learn's digits), an MNIST-style ``.npz`` (``images``, ``labels``),
a CSV file or directory of CSVs, or TFRecord files of ``tf.Example``. Images are flattened row-major into
zero-padded ``px_###`` columns so the natural order of the feature names is the pixel order.
Staging is content-addressed: an unchanged source leaves the staged file untouched, so ExampleGen's input
fingerprint (and with it every cached downstream step) stays valid on a re-run.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import gzip
import hashlib
import io
import itertools
import math
import os
import re
import shutil
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from model.features import (
    CSV_ENCODING,
    CSV_READER_OPTIONS,
    CSV_SUFFIXES,
    ID_KEY,
    LABEL_KEY,
    MISSING_TOKENS,
    OUTPUT_KEYS,
    PARQUET_SUFFIXES,
    is_feature,
    natural_key,
)
from pipeline.configs import FeaturePlan

DEFAULT_SOURCE = "digits"
CSV = "csv"
TFRECORD = "tfrecord"
# TFRecord files, gzip-compressed or not (ExampleGen's own outputs end in a bare .gz); a .csv.gz is a CSV.
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecord.gz", ".tfrecords", ".gz")
# Everything staging writes into its folder: CSV and TFRecord copies as NNNNN-<input name>, images as data.csv, each
# briefly with a .tmp suffix while written. Nothing else may live there (`_check_staging_dir`).
STAGED_NAME = re.compile(r"(\d{5}-.+|data\.csv)(\.tmp)?")
# Workbooks of spreadsheet programs, which a user may pass for their table.
SPREADSHEET_SUFFIXES = (".xlsx", ".xls", ".xlsm", ".ods", ".numbers")
# Separators of other delimited text exports: a one-column header holding one of them is a file to re-save.
OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}

NUMERIC, CATEGORICAL, DROPPED = "numeric", "categorical", "dropped"
# Why a column named like a model output is left out: BulkInferrer adds the outputs to every example it scores, and
# refuses an example that already has a feature of that name.
_OUTPUT_NAME = f"named like a model output ({', '.join(OUTPUT_KEYS)}), which BulkInferrer adds to every example"
# A text column with more distinct values than this is free text or an identifier, not a category.
MAX_CATEGORIES = 50
# Thousands separators, currency signs and percent signs: text that is a number without them was exported formatted
# (a spreadsheet's "1,234.50", "$12", "45%"); such a column is named as such when it has to be dropped.
FORMATTING = re.compile(r"[,$€£¥%]")
# Dates and times as text (2024-01-31, 2024/01/31, 31/01/2024, 01.31.2024, optionally with a time), years 1900-2099:
# such a column has too many values to be a category and is named as dates when it has to be dropped.
_DAY, _MONTH, _YEAR = r"(0?[1-9]|[12]\d|3[01])", r"(0?[1-9]|1[0-2])", r"(19|20)\d\d"
DATE = re.compile(rf"({_YEAR}[-/]{_MONTH}[-/]{_DAY}|{_DAY}[/.-]{_DAY}[/.-]{_YEAR})([T ][\d:.]+(Z|[+-][\d:]+)?)?")
# A column mostly of numbers with at most this many distinct texts (placeholders such as "-" or "n.a.") is named as
# such in the column report, with how to use it as numbers.
FEW_TEXTS = 3
# A column whose present values are at least this share numbers is numeric; any text in it is an error to fix.
NUMERIC_SHARE = 0.9
# A complete column of whole numbers that count up by one from row to row (0..n-1, 1..n, 1000..1000+n-1; in a
# directory, within each file) is a row number or a sequential identifier, not a feature, in tables of at least
# this many rows: pandas writes its index back as "Unnamed: 0" when a read CSV is saved again, and databases export
# auto-increment keys.
MIN_ROWS_FOR_ROW_NUMBERS = 20
# Names of identifier columns (customer_id, order-key, userId, UUID): such a column of whole numbers, a different one
# in every row, is a key in any order, not a feature (in tables of at least MIN_ROWS_FOR_ROW_NUMBERS rows).
ID_NAME = re.compile(r"(?i:(^|[\s_.-])(id|u?uid|guid|key)([\s_.-]|$)|[\s_.-](no|nr|number)$)|[a-z](Id|ID|Key)$")


class DataError(ValueError):
    """The input data cannot be used; the message says why in one sentence."""


@dataclasses.dataclass(frozen=True)
class StagedData:
    """Where ExampleGen reads from, and what the data looks like."""

    input_dir: str
    format: str
    feature_names: tuple[str, ...]
    image_shape: tuple[int, int] | None
    has_label: bool
    num_rows: int | None
    columns: tuple[Column, ...] = ()  # CSV input: every feature column, used or dropped, and how


def pixel_names(num_pixels: int) -> list[str]:
    """Feature names for flattened image pixels, zero-padded so they sort in pixel order."""
    width = len(str(num_pixels - 1))
    return [f"px_{i:0{width}d}" for i in range(num_pixels)]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16); no download."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.float32), digits.target.astype(np.int64)


def load_npz_arrays(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Images [N, H, W] (saved as that or [N, H, W, 1]) and optional labels [N] from an MNIST-style ``.npz``
    file."""
    try:
        with np.load(path) as data:
            if "images" not in data:
                raise DataError(f"{path} has no 'images' array (found: {', '.join(data.files) or 'nothing'}); save "
                                "the images as 'images' and any classes as 'labels', e.g. np.savez(path, "
                                "images=x_train, labels=y_train).")
            images = data["images"]
            labels = data.get("labels")
    except (OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path} is not a readable .npz file ({err}).") from err
    if images.ndim == 4 and images.shape[-1] == 1:  # Keras' grey [N, height, width, 1]
        images = images[..., 0]
    if images.ndim == 4 and images.shape[0] > 0 and images.shape[-1] in (3, 4):
        raise DataError(f"{path}: 'images' are colour images {images.shape}, and the model reads grey ones [N, "
                        "height, width]; save them as grey, e.g. images.mean(axis=-1).")
    if images.ndim != 3 or images.shape[0] == 0:
        raise DataError(f"{path}: 'images' must have shape [N, height, width] with N > 0, got {images.shape}.")
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise DataError(f"{path}: 'images' must hold numbers, not {images.dtype}.")
    bad = int(np.size(images) - np.count_nonzero(np.isfinite(images)))
    if bad:
        first = int(np.nonzero(~np.isfinite(images.reshape(len(images), -1)).all(1))[0][0])
        raise DataError(f"{path}: 'images' hold {bad} NaN or infinite pixel values (the first in image {first}); "
                        "fill or drop those images.")
    if labels is not None and labels.shape != (images.shape[0],):
        raise DataError(f"{path}: 'labels' must have shape [{images.shape[0]}], got {labels.shape}.")
    if labels is not None and np.issubdtype(labels.dtype, np.floating) and not np.isfinite(labels).all():
        raise DataError(f"{path}: 'labels' hold NaN or infinite values; give every image a label, or leave 'labels' "
                        "out to run without them.")
    return images, labels


def _write_if_changed(path: str, rows_writer) -> None:
    """Write via ``rows_writer(file)`` to a temp file and replace ``path`` only if the content differs."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        rows_writer(f)
    if os.path.exists(path) and _sha256(path) == _sha256(tmp):
        os.remove(tmp)
    else:
        os.replace(tmp, path)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _label_text(label: Any) -> int | str:
    """An image's label as the evaluator reads it, a category: whole numbers as integers (3.0 -> 3), names as text."""
    if isinstance(label, bytes):
        return label.decode("utf-8", "replace")
    if isinstance(label, np.integer | int | np.bool_) or (isinstance(label, np.floating | float)
                                                           and float(label).is_integer()):
        return int(label)
    return str(label)


def write_images_csv(images: np.ndarray, labels: np.ndarray | None, path: str) -> list[str]:
    """Write images as one CSV row each: ``id``, optional ``label``, then ``px_###`` pixel columns."""
    names = pixel_names(int(np.prod(images.shape[1:])))
    flat = images.reshape(images.shape[0], -1)
    integral = np.issubdtype(flat.dtype, np.integer) or np.all(np.equal(np.mod(flat, 1), 0))
    header = [ID_KEY] + ([LABEL_KEY] if labels is not None else []) + names

    def rows(f) -> None:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, row in enumerate(flat):
            values = row.astype(np.int64) if integral else row
            prefix = [i] + ([_label_text(labels[i])] if labels is not None else [])
            writer.writerow(prefix + values.tolist())

    _write_if_changed(path, rows)
    return names


def _is_table_name(path: str) -> bool:
    """True for the file names staging reads as tables: CSV (plain or .csv.gz) and Parquet."""
    return path.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES)


def _csv_files(source: str) -> list[str]:
    """The table files of ``source``: the file itself (whatever its name), or the CSV and Parquet files in a directory
    or matching a glob pattern (``lake/*/part.csv``)."""
    if os.path.isfile(source):
        return [source]
    folder = os.path.isdir(source)
    files = sorted(p for p in glob.glob(os.path.join(glob.escape(source), "*") if folder else source)
                   if os.path.isfile(p) and _is_table_name(p))
    if not files:
        where = "is a directory with" if folder else "matches"
        raise DataError(f"{source} {where} no .csv, .csv.gz or .parquet files.")
    return files


# Rows converted at a time when a Parquet file is read as CSV lines.
PARQUET_BATCH_ROWS = 8192


@contextlib.contextmanager
def _open_csv(path: str) -> Iterator[Iterable[str]]:
    """The lines of a table file for `csv.reader`: a CSV as text, decompressed when its name ends in .gz, or a
    Parquet file converted row by row (`_parquet_lines`)."""
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as err:
            raise _unreadable_parquet(path, err) from err
        with table:
            yield _parquet_lines(table, path)
        return
    opener = gzip.open if lower.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding=CSV_ENCODING) as f:
        yield f


def _unreadable_parquet(path: str, err: Exception) -> DataError:
    """One sentence for a Parquet file that does not read: Arrow's first clause says why."""
    lines = str(err).strip().splitlines()
    why = lines[0].split(". ")[0].rstrip(".") if lines else type(err).__name__
    return DataError(f"{path} is not a readable Parquet file ({why}).")


def _parquet_lines(table: Any, path: str) -> Iterator[str]:
    """A header line, then one CSV line per row of the `pyarrow.parquet.ParquetFile` ``table``: each value as batch
    scoring reads it from Parquet (a number or decimal as Python writes it, text as it is, a null or NaN blank).
    Binary values that are not UTF-8 and text with a NUL character, which a CSV cannot carry, stop staging."""
    import pyarrow as pa

    out = io.StringIO()
    writer = csv.writer(out)
    names = table.schema_arrow.names

    def line(values: Iterable[str]) -> str:
        out.seek(0)
        out.truncate()
        writer.writerow(values)
        return out.getvalue()

    def text(value: Any, column: int, row: int) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        try:
            value = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            raise DataError(f"{path}, row {row}, column {names[column]}: bytes that are not UTF-8 text; store the "
                            "column as text or leave it out.") from None
        if "\0" in value:
            raise DataError(f"{path}, row {row}, column {names[column]}: text with a NUL character, which a CSV "
                            "cannot carry; remove it.")
        return value

    yield line(names)
    row = 0
    try:
        for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for values in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                row += 1
                yield line(text(value, j, row) for j, value in enumerate(values))
    except (pa.ArrowException, OSError, OverflowError) as err:
        raise _unreadable_parquet(path, err) from err


def _looks_like_data(header: list[str]) -> bool:
    """True for a first row that is data rather than names: at least half of it (and two fields) numbers, which do
    not count up strictly from left to right as names that are numbers do (years, wavelengths 400.5, 401.5, ...)."""
    numbers = [n for n in map(_number, header) if n is not None]
    return (len(numbers) >= max(2, len(header) / 2)
            and any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)))


def _number(value: str) -> float | None:
    """The float in a CSV field (possibly inf), or None when it is not a number; digits other than ASCII ones
    (full-width, Arabic-Indic), which ExampleGen's CSV reader takes for text, make no number."""
    if not value.isascii():
        return None
    try:
        return float(value)
    except ValueError:
        return None


_INT64 = np.iinfo(np.int64)


def _beyond_int64(value: str) -> bool:
    """True for a whole number written without a point or exponent that int64 cannot hold (a 20-digit account
    number, an unsigned 64-bit hash), which ExampleGen's CSV reader takes for text, as staging must too."""
    try:
        return not _INT64.min <= int(value) <= _INT64.max
    except ValueError:
        return False


def is_missing(value: str) -> bool:
    """True for the spellings of a missing value (`MISSING_TOKENS`): an empty field, NA, N/A, #N/A, NaN, null,
    None, ?, an Excel error value such as #DIV/0!."""
    return value.strip().lower() in MISSING_TOKENS


@dataclasses.dataclass(frozen=True)
class Column:
    """One input column: how the model uses it, or why it is left out."""

    name: str
    kind: str  # NUMERIC, CATEGORICAL or DROPPED
    missing: int  # rows where the value is missing
    note: str  # one phrase for the run's column report
    values: frozenset[str] = frozenset()  # the categories of a categorical column

    def describe(self) -> str:
        return f"{self.name or '(no name)'}: {self.kind}, {self.note}"


def used_columns(columns: Sequence[Column]) -> list[Column]:
    """The columns the model reads (every kind but DROPPED), in their order."""
    return [c for c in columns if c.kind != DROPPED]


def _column(name: str, kind: str, missing: int, values: frozenset[str] = frozenset(), note: str = "",
            present: int = 0) -> Column:
    """A column with the standard note of its kind (imputation and categories); ``present``: rows with a value."""
    imputed = f"{missing} missing (imputed: mean + indicator)" if missing else "none missing"
    if kind == CATEGORICAL and len(values) > MAX_CATEGORIES:
        kind, note = DROPPED, f"more than {MAX_CATEGORIES} distinct text values (free text or an identifier)"
    elif kind == CATEGORICAL and len(values) == present > 1:
        kind, note = DROPPED, "a different text value in every row (an identifier or free text)"
    elif kind == CATEGORICAL and len(values) == 1 and not missing:
        kind, note = DROPPED, "the same text value in every row"
    elif kind == CATEGORICAL:
        imputed = f"{missing} missing (a slot shared with unseen categories)" if missing else "none missing"
        note = f"{len(values)} categories (one-hot), {imputed}"
    elif kind == NUMERIC:
        note = imputed
    return Column(name, kind, missing, note, values if kind == CATEGORICAL else frozenset())


class _ColumnScan:
    """Everything staging needs to know about one column after reading every row of every file."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.present = self.numbers = self.missing = 0
        self.values: set[str] = set()
        self.first_text: tuple[str, int, str] | None = None  # (file, line, value) of the first non-number
        self.first_infinite: tuple[str, int, str] | None = None
        # (file, line, value) of the first missing value written as text (NA, #N/A), not left empty
        self.first_spelled_missing: tuple[str, int, str] | None = None
        # the distinct texts that are no numbers, while there are at most `FEW_TEXTS` (a placeholder such as "-")
        self.texts: set[str] = set()
        # a text that is no number even without thousands separators, currency signs and % was seen
        self.plain_text = False
        # per file, the first and last value while every value counts up by one from the row before (None once one
        # does not): a row number or sequential identifier, `_row_numbers`
        self.counting: list[tuple[int, int]] | None = []
        # the whole numbers of a column named like an identifier while each is new (None once one is not): a key
        self.keys: set[int] | None = set() if ID_NAME.search(name.strip()) else None

    def add(self, value: str, path: str, line: int) -> None:
        if is_missing(value):
            self.missing += 1
            self.counting = self.keys = None
            if value and not self.first_spelled_missing:
                self.first_spelled_missing = (path, line, value)
            return
        self.present += 1
        if len(self.values) <= MAX_CATEGORIES:
            self.values.add(value)
        number = _number(value)
        # int() only where a float says int64 may not hold it: trying it on every value tripled the scan's cost
        too_long = number is not None and abs(number) >= 2.0**63 and _beyond_int64(value)
        if too_long:
            number = None
        if number is None:
            self.first_text = self.first_text or (path, line, value)
            if len(self.texts) <= FEW_TEXTS:
                self.texts.add(value)
            self.plain_text = self.plain_text or too_long or _number(FORMATTING.sub("", value)) is None
        elif not math.isfinite(number):
            self.first_infinite = self.first_infinite or (path, line, value)
        else:
            self.numbers += 1
        whole = int(number) if number is not None and math.isfinite(number) and number.is_integer() else None
        self._count(whole)
        self._key(whole)

    def _key(self, whole: int | None) -> None:
        if self.keys is None:
            return
        if whole is None or whole in self.keys:
            self.keys = None
        else:
            self.keys.add(whole)

    def _count(self, whole: int | None) -> None:
        if self.counting is None:
            return
        if whole is None:
            self.counting = None
        elif not self.counting:
            self.counting = [(whole, whole)]
        elif whole == self.counting[-1][1] + 1:
            self.counting[-1] = (self.counting[-1][0], whole)
        else:
            self.counting = None

    def _row_numbers(self) -> bool:
        """Every row holds a whole number one more than the row before it in its file."""
        return bool(self.counting) and self.present >= MIN_ROWS_FOR_ROW_NUMBERS

    def merge(self, other: _ColumnScan) -> None:
        """Add the same column's scan of another file."""
        self.present += other.present
        self.numbers += other.numbers
        self.missing += other.missing
        self.values |= other.values
        self.first_text = self.first_text or other.first_text
        self.first_infinite = self.first_infinite or other.first_infinite
        self.first_spelled_missing = self.first_spelled_missing or other.first_spelled_missing
        self.texts |= other.texts
        self.plain_text = self.plain_text or other.plain_text
        self.counting = None if self.counting is None or other.counting is None else self.counting + other.counting
        shared = self.keys is None or other.keys is None or not self.keys.isdisjoint(other.keys)
        if shared:
            self.keys = None
        else:
            self.keys |= other.keys

    def column(self) -> Column:
        """The column's kind, or a DataError when a mostly numeric column holds text or infinities."""
        if not self.name.strip():
            return _column(self.name, DROPPED, self.missing, note=(
                "no name in the header and no values (as when every line ends with a comma)" if self.present == 0
                else "no name in the header (a row index, such as pandas' to_csv writes by default)"))
        if self.name in OUTPUT_KEYS:
            return _column(self.name, DROPPED, self.missing, note=f"{_OUTPUT_NAME}; rename it to use it")
        if self.present == 0:
            return _column(self.name, DROPPED, self.missing, note="every value is missing")
        numeric_share = self.numbers / self.present
        if self.first_text is None or numeric_share >= NUMERIC_SHARE:
            for found, what in ((self.first_text, "is not a number"), (self.first_infinite, "is not finite")):
                if found and _beyond_int64(found[2]):
                    what = "is a whole number beyond the 64-bit range, which the pipeline reads as text,"
                if found:
                    raise DataError(
                        f"{found[0]}, line {found[1]}, column {self.name}: {found[2]!r} {what} but {numeric_share:.0%} "
                        "of the column's values are finite numbers; fix the value or leave the field empty.")
            if self._row_numbers():
                first, last = min(f for f, _ in self.counting), max(last for _, last in self.counting)
                return _column(self.name, DROPPED, self.missing, note=(
                    f"whole numbers {first}..{last} counting up by one from row to row (a row number or a sequential "
                    "identifier)"))
            if self.keys is not None and self.present >= MIN_ROWS_FOR_ROW_NUMBERS:
                return _column(self.name, DROPPED, self.missing, note=(
                    "whole numbers, a different one in every row, in a column named like an identifier (a key); "
                    "rename it to use it as a number"))
            return _column(self.name, NUMERIC, self.missing)
        column = _column(self.name, CATEGORICAL, self.missing, frozenset(self.values), present=self.present)
        if column.kind == DROPPED and len(self.values) > 1 and all(DATE.fullmatch(v.strip()) for v in self.values):
            return _column(self.name, DROPPED, self.missing, note=(
                f"dates ({self.first_text[2]!r}); derive a number from them, such as days since the date, to use "
                "the column"))
        if not self.plain_text and self.first_infinite is None:  # every text is a number once its signs are gone
            formatted = (f"numbers written as text ({self.first_text[2]!r}: thousands separators, decimal commas, "
                         "currency signs or %)")
            if column.kind == DROPPED:
                return _column(self.name, DROPPED, self.missing, note=(
                    f"{formatted}; save them as plain numbers (1234.5) to use the column"))
            return dataclasses.replace(column, note=(
                f"{column.note}; {formatted} taken as categories, so their order is not used: save them as plain "
                "numbers (1234.5) to use them as numbers"))
        if self.numbers >= self.present / 2 and len(self.texts) <= FEW_TEXTS:  # numbers and a placeholder or two
            texts = ", ".join(map(repr, sorted(self.texts)))
            mixed = f"numbers mixed with the text {texts} in {1 - numeric_share:.0%} of the values"
            advice = "write missing values as empty fields (or NA) to use the column as numbers"
            if column.kind == DROPPED:
                return _column(self.name, DROPPED, self.missing, note=f"{mixed}; {advice}")
            return dataclasses.replace(column, note=f"{column.note}; {mixed} taken as categories: {advice}")
        return column


def column_report(columns: tuple[Column, ...] | list[Column], limit: int = 30) -> list[str]:
    """One line per column (used or dropped) for the run's log; beyond ``limit`` used columns, counts only."""
    used = used_columns(columns)
    dropped = [c for c in columns if c.kind == DROPPED]
    if len(used) <= limit:
        lines = [f"  {c.describe()}" for c in used]
    else:
        lines = [f"  {n} {kind} columns" for kind in (NUMERIC, CATEGORICAL) if (n := sum(c.kind == kind for c in used))]
        with_missing = [c.name for c in used if c.missing]
        if with_missing:
            lines.append(f"  {len(with_missing)} with missing values (imputed): {', '.join(with_missing)}")
    return lines + [f"  {c.describe()}" for c in dropped]


def _field_count_hint(header: list[str], row: list[str]) -> str:
    """What a data row with another field count than the header suggests, as a clause ('' when nothing does)."""
    if len(row) > len(header) and not any(value.strip() for value in row[len(header):]):
        return ("; the extra fields are empty, as when data lines end with a comma: remove those commas or name the "
                "column")
    for separator, name in OTHER_SEPARATORS.items():
        if separator in ",".join(header) and separator in ",".join(row):
            return f"; it looks separated by {name}, not commas: save it as comma-separated values"
    return ""


def _scan_file(path: str, label: str = LABEL_KEY) -> tuple[list[_ColumnScan], bool]:
    """The scans of a CSV's feature columns (header order) over all its rows, and whether it has the ``label`` column
    (`LABEL_KEY` unless the user named another)."""
    try:
        with _open_csv(path) as f:
            reader = csv.reader(f, **CSV_READER_OPTIONS)
            header = next(reader, None)
            if not header:
                raise DataError(f"{path} is empty: a CSV needs a header row and at least one data row.")
            first = next(reader, None)
            for separator, name in OTHER_SEPARATORS.items():
                if len(header) == 1 and separator in header[0]:
                    raise DataError(f"{path} has one column named {header[0]!r}, which looks separated by {name}, not "
                                    "commas; save it as comma-separated values.")
                # header and first row both split into more fields by the separator than by commas: "Preis, EUR;
                # Menge;label" over "3,5;2;0" (names such as "sales|2023" over comma-separated numbers are names)
                if first and all(sum(f.count(separator) for f in row) + 1 > len(row) for row in (header, first)):
                    raise DataError(f"{path}'s header and first data row split into more fields by {name} than by "
                                    "commas, so it looks separated by them; save it as comma-separated values.")
            if _looks_like_data(header):
                shown = ", ".join(header[:3]) + (", ..." if len(header) > 3 else "")
                raise DataError(f"{path} starts with a row of values ({shown}), not a header; add a first row "
                                "naming the columns.")
            named = [name for name in header if name.strip()]
            if len(set(named)) != len(named):
                duplicates = sorted({name for name in named if named.count(name) > 1})
                raise DataError(f"{path} repeats the column names {', '.join(duplicates)} in its header.")
            if label != LABEL_KEY and label not in header:
                raise DataError(f"{path} has no column named {label!r} to use as the label; its columns are "
                                f"{', '.join(map(repr, header))}.")
            if label != LABEL_KEY and LABEL_KEY in header:
                raise DataError(f"{path} has a column named {LABEL_KEY!r} besides the label column {label!r}; rename "
                                "or remove one of them.")
            scans = [_ColumnScan(name) if is_feature(name) and name != label else None for name in header]
            rows = 0
            for row in itertools.chain([first] if first is not None else [], reader):
                if not row:
                    continue
                if len(row) != len(header):
                    what = "the first data row" if rows == 0 else f"line {reader.line_num}"
                    raise DataError(f"{path}: {what} has {len(row)} fields but the header has {len(header)}"
                                    f"{_field_count_hint(header, row)}.")
                rows += 1
                for scan, value in zip(scans, row, strict=True):
                    if scan is not None:
                        scan.add(value, path, reader.line_num)
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err}); save it as UTF-8 CSV (a spreadsheet's \"CSV UTF-8\").") \
            from err
    except csv.Error as err:
        raise DataError(f"{path} is not a text CSV file ({err}).") from err
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path} cannot be decompressed as gzip ({err or 'it ends early'}); compress it "
                        "again or give the plain CSV.") from err
    if rows == 0:
        raise DataError(f"{path} has a header but no data rows.")
    return [scan for scan in scans if scan is not None], label in header


def copy_checked_csv(source: str, target: str, columns: list[Column], has_label: bool, first_id: int = 0,
                     label_column: str = LABEL_KEY) -> int:
    """Copy the id, label (from ``label_column``, written as ``label``) and used feature columns of ``source`` to
    ``target``; returns the row count.

    Missing values (any spelling of `is_missing`) are written as empty fields, which ExampleGen reads as absent
    features; tf.Transform imputes them. Rows without an ``id`` column are numbered from ``first_id``. Dropped
    columns (all missing, free text) are left out. The label, when present, is copied as it is (a number or a class
    name: the evaluator reads labels as categories) and must not be missing in any row.
    """
    names = [c.name for c in used_columns(columns)]
    kept = [ID_KEY] + ([LABEL_KEY] if has_label else []) + names
    rows = 0

    def write(f) -> None:
        nonlocal rows
        with _open_csv(source) as src:
            reader = csv.reader(src, **CSV_READER_OPTIONS)
            header = next(reader)
            index = {name: i for i, name in enumerate(header)}
            writer = csv.writer(f)
            writer.writerow(kept)
            for row in reader:
                if not row:
                    continue
                line = reader.line_num
                if len(row) != len(header):
                    raise DataError(f"{source}, line {line}: {len(row)} fields but the header has {len(header)}.")
                values = [row[index[ID_KEY]] if ID_KEY in index else str(first_id + rows)]
                if has_label:
                    label = row[index[label_column]]
                    if is_missing(label):
                        raise DataError(f"{source}, line {line}: the label ({label_column!r}) is missing ({label!r}); "
                                        "give every row a label (a number or a class name), or remove the column "
                                        "to run without labels.")
                    values.append(label)
                values += ["" if is_missing(row[index[name]]) else row[index[name]] for name in names]
                writer.writerow(values)
                rows += 1

    try:
        _write_if_changed(target, write)
    except DataError:
        os.remove(f"{target}.tmp")
        raise
    return rows


def _image_shape_for(names: list[str]) -> tuple[int, int] | None:
    """A square image shape when every feature is a ``px_`` pixel column of a square image."""
    side = int(round(len(names) ** 0.5))
    if side * side == len(names) and names == pixel_names(len(names)):
        return side, side
    return None


def stage(source: str, staging_dir: str, label_column: str = LABEL_KEY) -> StagedData:
    """Make ``source`` readable by ExampleGen under ``staging_dir`` and describe it; a CSV's ``label_column`` becomes
    the ``label`` that scores the clusters."""
    sources = [] if source == DEFAULT_SOURCE else [source, *glob.glob(source)]
    if source != DEFAULT_SOURCE and not os.path.exists(source) and len(sources) == 1:
        raise DataError(f"input {source!r} does not exist.")
    image_input = source == DEFAULT_SOURCE or source.endswith(".npz")
    tfrecords = [] if image_input else _tfrecord_files(source)
    if label_column != LABEL_KEY and (image_input or tfrecords):
        raise DataError(f"a label column ({label_column!r}) can only be named for CSV or Parquet input; {source!r} is "
                        "neither.")
    if label_column == ID_KEY:
        raise DataError(f"the {ID_KEY!r} column identifies rows and cannot be the label; name the column of true "
                        "classes.")
    os.makedirs(staging_dir, exist_ok=True)
    _check_staging_dir(staging_dir, sources)
    if source == DEFAULT_SOURCE:
        images, labels = load_digits_arrays()
        return _stage_images(images, labels, staging_dir)
    if source.endswith(".npz"):
        images, labels = load_npz_arrays(source)
        return _stage_images(images, labels, staging_dir)
    if tfrecords:
        return _stage_tfrecords(tfrecords, staging_dir)
    files = _csv_files(source)
    _refuse_workbooks(files)
    columns, has_label, _ = _scan_csv_files(files, label_column)
    if _image_shape_for([c.name for c in columns]):
        for column in columns:
            if column.kind != NUMERIC or column.missing:
                raise DataError(f"{files[0]}: pixel column {column.name} is {column.kind} with {column.missing} "
                                "missing values; every pixel of an image must be a number.")
    staged = _staged_names(files)
    rows = 0
    for path, name in zip(files, staged, strict=True):
        rows += copy_checked_csv(path, os.path.join(staging_dir, name), columns, has_label, first_id=rows,
                                 label_column=label_column)
    _clear_except(staging_dir, set(staged))
    names = [c.name for c in used_columns(columns)]
    return StagedData(staging_dir, CSV, tuple(names), _image_shape_for(names), has_label, rows, tuple(columns))


# Column names that usually hold the true classes rather than a feature (scikit-learn's data frames call it "target").
LABEL_LIKE_NAMES = ("label", "labels", "target", "class", "species", "outcome", "truth", "ground_truth")


def label_like_columns(staged: StagedData) -> list[str]:
    """Used feature columns of an unlabelled CSV named like a label: if they hold the answer, they decide the
    clusters."""
    if staged.has_label:
        return []
    return [c.name for c in used_columns(staged.columns) if c.name.strip().lower() in LABEL_LIKE_NAMES]


def _refuse_workbooks(files: list[str]) -> None:
    for path in files:
        if path.lower().endswith(SPREADSHEET_SUFFIXES):
            raise DataError(f"{path} is a spreadsheet workbook; export the sheet as CSV UTF-8 (or save it as Parquet).")


def scan_csv_source(source: str) -> list[Column]:
    """The feature columns of a CSV file (plain or .csv.gz), a directory or a glob of them, classified from every row
    as staging does, for a pipeline whose CsvExampleGen reads them as they are (Kubeflow): Parquet, and a header with
    spaces after its commas, are refused."""
    if not os.path.exists(source) and not glob.glob(source):
        raise DataError(f"{source} does not exist.")
    files = _csv_files(source)
    _refuse_workbooks(files)
    for path in files:
        if path.lower().endswith(PARQUET_SUFFIXES):
            raise DataError(f"{path} is Parquet, and the pipeline's CsvExampleGen on the cluster reads CSV; give it "
                            "the data as CSV.")
    columns, _, spelled = _scan_csv_files(files)  # refuses files that do not read, in one sentence
    for column in used_columns(columns):
        if column.name in spelled:
            path, line, value = spelled[column.name]
            raise DataError(f"{path}, line {line}, column {column.name}: the missing value is written {value!r}, "
                            "which the cluster's CsvExampleGen does not read as missing; leave missing values empty.")
    for path in files:
        with _open_csv(path) as f:
            spaced = [name for name in next(csv.reader(f), []) if name != name.lstrip()]
        if spaced:
            raise DataError(f"{path} has spaces after the commas of its header ({spaced[0]!r}), which the cluster's "
                            "CsvExampleGen keeps in the column names; save it without them.")
    for column in columns:
        if column.name in OUTPUT_KEYS:  # the cluster's ExampleGen reads the data as it is, so it cannot be left out
            raise DataError(f"{source}: column {column.name!r} is {_OUTPUT_NAME}; rename it in the data.")
    return columns


def feature_plan(columns: list[Column] | tuple[Column, ...], scaling: str) -> FeaturePlan:
    """What tf.Transform does with each column: dropped ones are left out, text ones one-hot, blanks imputed."""
    used = used_columns(columns)
    return FeaturePlan(
        scaling=scaling,
        columns=tuple(c.name for c in used),
        categorical={c.name: len(c.values) for c in used if c.kind == CATEGORICAL},
        missing=tuple(c.name for c in used if c.missing),
    )


def _scan_csv_files(
    files: list[str], label: str = LABEL_KEY
) -> tuple[list[Column], bool, dict[str, tuple[str, int, str]]]:
    """The columns of one or several CSV files that share one header: kinds and counts over all their rows (a column
    that is constant within each file but differs between them is used), whether there is a ``label`` column, and
    per feature column the (file, line, value) of its first missing value written as text rather than left empty."""
    scans, has_label = _scan_file(files[0], label)
    for extra in files[1:]:
        more, extra_label = _scan_file(extra, label)
        if [c.name for c in more] != [c.name for c in scans] or extra_label != has_label:
            raise DataError(f"{extra} has different columns from {files[0]}; all CSV files must share one header.")
        for scan, other in zip(scans, more, strict=True):
            scan.merge(other)
    columns = sorted((scan.column() for scan in scans), key=lambda c: natural_key(c.name))
    if not used_columns(columns):
        where = files[0] if len(files) == 1 else f"the {len(files)} CSV files ({files[0]}, ...)"
        why = "; ".join(f"{c.name or '(no name)'}: {c.note}" for c in columns) or "it has only id and label columns"
        raise DataError(f"{where} has no usable feature columns; {why}.")
    return columns, has_label, {s.name: s.first_spelled_missing for s in scans if s.first_spelled_missing}


def _stage_images(images: np.ndarray, labels: np.ndarray | None, staging_dir: str) -> StagedData:
    names = write_images_csv(images, labels, os.path.join(staging_dir, "data.csv"))
    _clear_except(staging_dir, {"data.csv"})
    return StagedData(staging_dir, CSV, tuple(names), tuple(images.shape[1:3]), labels is not None, len(images))


def _tfrecord_files(source: str) -> list[str]:
    folder = os.path.isdir(source)
    candidates = sorted(glob.glob(os.path.join(glob.escape(source), "*") if folder else source))
    return [p for p in candidates if os.path.isfile(p) and p.endswith(_TFRECORD_SUFFIXES) and not _is_table_name(p)]


def _stage_tfrecords(files: list[str], staging_dir: str) -> StagedData:
    import tensorflow as tf

    compression = "GZIP" if files[0].endswith(".gz") else ""
    try:
        record = next(iter(tf.data.TFRecordDataset(files[:1], compression_type=compression).take(1)), None)
    except tf.errors.OpError as err:
        raise DataError(f"{files[0]} is not a readable TFRecord file ({err.message}).") from err
    if record is None:
        raise DataError(f"{files[0]} holds no records.")
    example = tf.train.Example.FromString(record.numpy())
    feats = example.features.feature
    numeric = ("float_list", "int64_list")
    names = sorted((k for k, v in feats.items() if is_feature(k) and v.WhichOneof("kind") in numeric), key=natural_key)
    if not names:
        raise DataError(f"{files[0]} has no numeric features (features: {', '.join(sorted(feats)) or 'none'}).")
    clashing = sorted(set(feats) & set(OUTPUT_KEYS))
    if clashing:
        what = f"feature {clashing[0]!r} is" if len(clashing) == 1 else f"features {', '.join(map(repr, clashing))} are"
        raise DataError(f"{files[0]}: {what} {_OUTPUT_NAME}; rename it.")
    staged = _staged_names(files)
    _copy_if_changed(files, [os.path.join(staging_dir, name) for name in staged])
    _clear_except(staging_dir, set(staged))
    return StagedData(staging_dir, TFRECORD, tuple(names), _image_shape_for(names), LABEL_KEY in feats, None)


def _copy_if_changed(files: list[str], targets: list[str]) -> None:
    for path, target in zip(files, targets, strict=True):
        if not os.path.exists(target) or _sha256(target) != _sha256(path):
            shutil.copyfile(path, f"{target}.tmp")
            os.replace(f"{target}.tmp", target)


def _staged_names(files: list[str]) -> list[str]:
    """The names of the copies of ``files`` in the staging folder (numbered, so that two inputs never clash); a
    compressed CSV or a Parquet file is staged as a plain CSV, named so."""
    names = []
    for i, path in enumerate(files):
        name = os.path.basename(path)
        suffix = next((s for s in sorted(CSV_SUFFIXES + PARQUET_SUFFIXES, key=len, reverse=True)
                       if name.lower().endswith(s)), "")
        name = name[: len(name) - len(suffix)] + ".csv" if suffix else name
        names.append(f"{i:05d}-{name}")
    return names


def _check_staging_dir(staging_dir: str, sources: list[str]) -> None:
    """`DataError`, before anything is written or removed, when an input lies inside ``staging_dir`` or the folder
    holds anything staging did not put there: ExampleGen reads every file in it and staging removes the stale ones,
    so a user's own files there would be ingested or lost."""
    root = os.path.realpath(staging_dir)
    for source in sources:
        path = os.path.realpath(source)
        if path == root or path.startswith(root + os.sep):
            raise DataError(f"input {source} lies inside {staging_dir}, the folder the run stages its data in; move "
                            "it elsewhere or choose another --output-root.")
    foreign = sorted(name for name in os.listdir(staging_dir)
                     if not (STAGED_NAME.fullmatch(name) and os.path.isfile(os.path.join(staging_dir, name))))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise DataError(f"{staging_dir} holds files the run did not stage ({shown}); the run manages that folder "
                        "and removes stale files in it, so move them elsewhere or choose another --output-root.")


def _clear_except(directory: str, keep: set[str]) -> None:
    """Remove the earlier stagings' files (`_check_staging_dir` made sure there is nothing else) not in ``keep``."""
    for name in os.listdir(directory):
        if name not in keep and STAGED_NAME.fullmatch(name):
            os.remove(os.path.join(directory, name))
