"""Reading: every input row ends up in a batch (dense raw values or tf.Examples) or a dead letter, and is counted.

CSV: Python's csv module for the structure, Arrow's parser for the numbers; Parquet: Arrow columns; TFRecord:
checked records (:func:`tfrecords`) parsed as tf.Examples. Rows are checked exactly as
:func:`serving.feature_spec.build_example` checks them, so a dead letter's reason is what a serving request would get:
a missing value (empty, NA, NaN, null...) of an optional (sparse) feature is NaN in a dense row and left out of a
tf.Example, of a required feature it dead-letters the row. A model with text columns gets tf.Examples only.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import gzip
import io
import json
import math
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import apache_beam as beam
import crcmod.predefined
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from batch_scoring.options import BLANK_IDS, CSV, ID_ROWS, PARQUET, READ, TFRECORD
from model.features import CSV_ENCODING, CSV_READER_OPTIONS, ID_KEY
from serving.feature_spec import INT64, FeatureSpec, RawFeature, RequestError, build_example, to_value

DEAD_TAG = "dead"  # tagged output: ((source, position), dead-letter record)
COUNT_TAG = "count"  # tagged output: (READ, BLANK_IDS or ID_ROWS, rows of one file)
IDS_TAG = "ids"  # tagged output: the ids a batch of rows gave themselves (not the position ones), for SHARED_IDS
Batch = tuple[list, list, Any]  # (keys, ids, float32 [n, F] array or serialized tf.Examples)
_crc32c = crcmod.predefined.mkPredefinedCrcFun("crc-32c")


def _dead(source: str, position: int, row_id: str | None, reason: str, raw: str) -> beam.pvalue.TaggedOutput:
    """A dead letter, keyed by its input position."""
    record = {"id": row_id, "source": source, "position": position, "reason": reason, "raw": raw}
    return beam.pvalue.TaggedOutput(DEAD_TAG, ((source, position), record))


def _csv_line(fields: list[str]) -> str:
    """A row's fields as one CSV line (the dead letter's ``raw``)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


_FLOAT32_EXACT_INT = 2**24  # larger int64 values go through a tf.Example: float32 cannot hold them exactly
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NOT_PLAIN = re.compile(r"[^0-9.eE+\-,]")  # a plain decimal number has none of these characters


def _is_plain(text: str, width: int) -> bool:
    """True when the joined feature fields are ``width`` non-empty plain decimal numbers (Arrow may parse them)."""
    return (_NOT_PLAIN.search(text) is None and text.count(",") == width - 1 and ",," not in text
            and not text.startswith(",") and not text.endswith(","))


def _parse_numbers(texts: list[str], width: int) -> np.ndarray | None:
    """Comma-joined plain numbers (one text per row) -> float64 ``[n, width]`` with Arrow's C++ parser.

    ``None`` when Arrow refuses anything (the caller then checks each row in Python). For text made only of digits,
    signs, dots and exponents Arrow's parser accepts a subset of what Python's ``float`` accepts, with the same
    (correctly rounded) values, so the result is what :func:`serving.feature_spec.to_number` would give.
    """
    if not texts:
        return np.empty((0, width))
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{j}" for j in range(width)]
    try:
        # open_csv, not read_csv: on Python 3.10 every read_csv call walks all live objects (gc.get_referrers, a
        # workaround for bpo-42248 in pyarrow's signal handling), ~50 ms per batch once TensorFlow is loaded
        table = pacsv.open_csv(
            pa.BufferReader("\n".join(texts).encode("ascii")),  # not a Python file object: no traceback GC
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64()), null_values=[],
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        ).read_all()
    except (pa.ArrowInvalid, UnicodeEncodeError):
        return None
    if table.num_rows != len(texts) or any(column.null_count for column in table.columns):
        return None
    return np.column_stack([column.to_numpy() for column in table.columns])


def _clean_rows(matrix: np.ndarray, int_mask: np.ndarray) -> np.ndarray:
    """Rows whose values are finite, within float32 and, for int64 features, integers float32 holds exactly."""
    ok = np.isfinite(matrix).all(axis=1)
    if int_mask.any():
        ints = matrix[:, int_mask]
        with np.errstate(invalid="ignore"):
            ok &= (ints == np.round(ints)).all(axis=1) & (np.abs(ints) <= _FLOAT32_EXACT_INT).all(axis=1)
    if (~int_mask).any():
        with np.errstate(invalid="ignore"):
            ok &= (np.abs(matrix[:, ~int_mask]) <= _FLOAT32_MAX).all(axis=1)
    return ok


def _checked_number(values: dict, name: str, feature: RawFeature) -> int | float:
    """One numeric feature of a raw row as :func:`build_example` checks it (RequestError with the same sentence);
    NaN for a missing value of an optional feature (``predict_features`` reads NaN as missing)."""
    value = to_value(values.get(name), feature)
    return math.nan if value is None else value


def _examples_batch(items: list) -> Batch:
    """``[(key, id, serialized tf.Example)]`` -> one batch ``(keys, ids, examples)``."""
    return [k for k, _, _ in items], [i for _, i, _ in items], [e for _, _, e in items]


def source_labels(files: list[str]) -> dict[str, str]:
    """How position keys name each input file: its base name, or, when two inputs share one (``2026-11/part.csv``
    and ``2026-12/part.csv``), its path below the folder common to all inputs."""
    if len({os.path.basename(f) for f in files}) == len(files):
        return {f: os.path.basename(f) for f in files}
    parts = [f.split("/") for f in files]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return {f: "/".join(p[common:]) for f, p in zip(files, parts, strict=True)}


class _Rows:
    """What one file's reader counts (READ, BLANK_IDS, ID_ROWS) and the ids its rows gave themselves, yielded in lists
    (IDS_TAG) for the job's count of shared ids."""

    def __init__(self, chunk: int, id_required: bool) -> None:
        self.counts = {READ: 0, BLANK_IDS: 0, ID_ROWS: 0}
        self._chunk = chunk
        self._id_required = id_required
        self._given: list[str] = []

    def row_id(self, given: str | None, fallback: str, has_column: bool) -> str:
        """``given``, else ``fallback``, counted as a blank id where the input ``has_column`` (the id column) or the
        user named the column (``id_required``); rows where the input ``has_column`` count as ID_ROWS either way."""
        self.counts[ID_ROWS] += has_column
        if given:
            self._given.append(given)
            return given
        self.counts[BLANK_IDS] += has_column or self._id_required
        return fallback

    def given_ids(self, last: bool = False) -> Iterator[beam.pvalue.TaggedOutput]:
        """The ids given since the last call, as one IDS_TAG list, once ``chunk`` have gathered (or at the ``last``)."""
        if self._given and (last or len(self._given) >= self._chunk):
            yield beam.pvalue.TaggedOutput(IDS_TAG, self._given)
            self._given = []


class ReadRows(beam.DoFn):
    """One input file -> batches ``(keys, ids, inputs)``, dead letters, its counts and the lists of its rows' ids.

    A row's id is its value of ``id_column`` (a column, or a TFRecord feature), else ``<file>:<position>``, the file
    named by ``labels`` (`source_labels`) or else by its base name;
    such rows are counted (BLANK_IDS) where the file (for TFRecord: the record) has the column, or everywhere with
    ``id_required`` (the user named the column). Ids a row gave itself go out in lists (IDS_TAG) to be counted.

    ``keys`` are ``(source, position)``; ``inputs`` is a float32 ``[n, F]`` array of raw values in the model's feature
    order (CSV, Parquet, when ``dense``: the model has ``predict_features``; NaN where an optional feature is missing)
    or a list of serialized tf.Examples (TFRecord, every row when not ``dense``, and the rare rows holding int64
    values that float32 cannot represent exactly). Batches hold at most ``batch_size`` rows.
    """

    def __init__(self, fmt: str, spec: FeatureSpec, batch_size: int = 256, dense: bool = True,
                 id_column: str = ID_KEY, id_required: bool = False, labels: dict[str, str] | None = None) -> None:
        self._fmt = fmt
        self._labels = labels or {}
        self._id_column = id_column
        self._id_required = id_required
        self._spec = spec
        self._batch_size = batch_size
        self._dense = dense
        self._int_mask = np.array([feature.dtype == INT64 for feature in spec.values()], dtype=bool)

    def process(self, path: str) -> Iterable:
        rows = _Rows(self._batch_size, self._id_required)
        reader = {CSV: self._csv, TFRECORD: self._tfrecord, PARQUET: self._parquet}[self._fmt]
        yield from reader(path, rows)
        yield from rows.given_ids(last=True)
        for name, n in rows.counts.items():
            beam.metrics.Metrics.counter("score", name).inc(n)
            yield beam.pvalue.TaggedOutput(COUNT_TAG, (name, n))

    # ---- CSV ------------------------------------------------------------------------------------------------------

    def _csv(self, path: str, rows: _Rows) -> Iterable:
        name = self._labels.get(path, os.path.basename(path))
        with FileSystems.open(path) as binary:
            reader = csv.reader(io.TextIOWrapper(binary, encoding=CSV_ENCODING, errors="replace", newline=""),
                                **CSV_READER_OPTIONS)
            header = next(reader, None)
            if header is None:  # an empty file: no rows (check_columns let it through)
                return
            id_col = header.index(self._id_column) if self._id_column in header else None
            columns = [header.index(feature) for feature in self._spec]
            pending = []  # (line, id, fields) of rows with the header's field count
            while True:
                line = reader.line_num + 1
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as err:
                    rows.counts[READ] += 1
                    yield _dead(path, line, None, f"unparsable CSV record ({err}).", "")
                    continue
                if not fields:
                    continue  # blank line: not a row
                rows.counts[READ] += 1
                given = fields[id_col] if id_col is not None and id_col < len(fields) else ""
                row_id = rows.row_id(given, f"{name}:{line}", id_col is not None)
                if len(fields) != len(header):
                    yield _dead(path, line, row_id, f"the row has {len(fields)} fields but the header has "
                                f"{len(header)}.", _csv_line(fields))
                    continue
                pending.append((line, row_id, fields))
                if len(pending) >= self._batch_size:
                    yield from self._csv_batch(path, header, columns, pending)
                    yield from rows.given_ids()
                    pending = []
            if pending:
                yield from self._csv_batch(path, header, columns, pending)

    def _csv_batch(self, path: str, header: list[str], columns: list[int], pending: list) -> Iterable:
        texts = [",".join([fields[c] for c in columns]) for _, _, fields in pending]
        plain = [self._dense and _is_plain(text, len(columns)) for text in texts]
        matrix = _parse_numbers([t for t, ok in zip(texts, plain, strict=True) if ok], len(columns))
        if matrix is None:  # Arrow refused something: every row of the batch is checked in Python
            plain = [False] * len(pending)
        parsed, j = [], 0
        for ok in plain:
            parsed.append(matrix[j] if ok else None)
            j += ok
        yield from self._emit(
            path, [((path, line), row_id) for line, row_id, _ in pending], parsed,
            raw_values=lambda i: dict(zip(header, pending[i][2], strict=True)),
            raw_text=lambda i: _csv_line(pending[i][2]))

    # ---- Parquet --------------------------------------------------------------------------------------------------

    def _parquet(self, path: str, rows: _Rows) -> Iterable:
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = self._labels.get(path, os.path.basename(path))
        with FileSystems.open(path) as handle:
            index = 0
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=self._batch_size):
                n = batch.num_rows
                rows.counts[READ] += n
                names = batch.schema.names
                has_id = self._id_column in names
                given = batch.column(names.index(self._id_column)).to_pylist() if has_id else [None] * n
                ids = [rows.row_id(id_text(g), f"{name}:{index + i}", has_id)
                       for i, g in enumerate(given)]
                columns = [batch.column(names.index(f)) for f in self._spec]
                parsed = [None] * n
                if self._dense and all(pa.types.is_integer(c.type) or pa.types.is_floating(c.type) for c in columns):
                    # nulls become NaN here, fail the finite check and go through the row check (missing values)
                    matrix = np.column_stack([c.to_numpy(zero_copy_only=False).astype(np.float64) for c in columns])
                    parsed = list(matrix)
                as_dicts = {}

                def row(i: int, batch=batch, as_dicts=as_dicts) -> dict:
                    if not as_dicts:
                        as_dicts.update(enumerate(batch.to_pylist()))
                    return as_dicts[i]

                yield from self._emit(
                    path, [((path, index + i), ids[i]) for i in range(n)], parsed,
                    raw_values=lambda i, row=row: {k: v for k, v in row(i).items() if v is not None},
                    raw_text=lambda i, row=row: json.dumps(row(i), default=str, allow_nan=True))
                yield from rows.given_ids()
                index += n

    # ---- validation shared by CSV and Parquet ---------------------------------------------------------------------

    def _emit(self, path: str, keyed: list, parsed: list, raw_values: Callable[[int], dict],
              raw_text: Callable[[int], str]) -> Iterable:
        """Validate one batch; yield the dense batch, a tf.Example batch for exact rows and the dead letters.

        ``keyed[i]`` is ``(key, id)``; ``parsed[i]`` the row's float64 values or None. Parsed rows that are finite,
        within float32 and integral for int64 features (and small enough for float32 to hold exactly) are accepted
        as they are; every other row is checked value by value exactly as :func:`build_example` checks it, so its
        dead-letter reason names the first bad feature, the same sentence as on the tf.Example path. Without
        ``dense`` every row becomes a tf.Example.
        """
        spec = self._spec
        if not self._dense:
            examples = []
            for i, (key, row_id) in enumerate(keyed):
                try:
                    examples.append((key, row_id, build_example(raw_values(i), spec)))
                except RequestError as err:
                    yield _dead(path, key[1], row_id, str(err), raw_text(i))
            if examples:
                yield _examples_batch(examples)
            return
        filled = [i for i, values in enumerate(parsed) if values is not None]
        clean = np.zeros(len(parsed), dtype=bool)
        if filled:
            clean[filled] = _clean_rows(np.stack([parsed[i] for i in filled]), self._int_mask)
        keys, ids, dense, examples = [], [], [], []
        for i, (key, row_id) in enumerate(keyed):
            if clean[i]:
                keys.append(key)
                ids.append(row_id)
                dense.append(parsed[i])
                continue
            values = raw_values(i)
            try:
                numbers = [_checked_number(values, name, feature) for name, feature in spec.items()]
            except RequestError as err:
                yield _dead(path, key[1], row_id, str(err), raw_text(i))
                continue
            if any(feature.dtype == INT64 and not math.isnan(number) and abs(number) > _FLOAT32_EXACT_INT
                   for number, feature in zip(numbers, spec.values(), strict=True)):
                examples.append((key, row_id, build_example(values, spec)))
            else:
                keys.append(key)
                ids.append(row_id)
                dense.append(np.asarray(numbers, dtype=np.float64))
        if keys:
            yield keys, ids, np.stack(dense).astype(np.float32)
        if examples:
            yield _examples_batch(examples)

    # ---- TFRecord -------------------------------------------------------------------------------------------------

    def _tfrecord(self, path: str, rows: _Rows) -> Iterable:
        name = self._labels.get(path, os.path.basename(path))
        batch = []
        with open_tfrecords(path) as records:
            index = 0
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except (ValueError, OSError, EOFError, zlib.error) as err:  # bad framing/checksum, cut short, bad gzip
                    rows.counts[READ] += 1
                    yield _dead(path, index, None, f"unreadable TFRecord data from record {index} on; the rest of "
                                f"the file is skipped ({str(err)[:100]}).", "")
                    break
                rows.counts[READ] += 1
                row_id, example, reason = self._example_row(record, f"{name}:{index}", rows)
                if reason is None:
                    batch.append(((path, index), row_id, example))
                else:
                    yield _dead(path, index, row_id, reason, base64.b64encode(record).decode("ascii"))
                if len(batch) >= self._batch_size:
                    yield _examples_batch(batch)
                    yield from rows.given_ids()
                    batch = []
                index += 1
        if batch:
            yield _examples_batch(batch)

    def _example_row(self, record: bytes, default_id: str, rows: _Rows) -> tuple[str, bytes | None, str | None]:
        """One TFRecord record -> (id, the tf.Example rebuilt with the model's kinds, None) or (id, None, reason)."""
        import tensorflow as tf
        from google.protobuf.message import DecodeError

        try:
            feats = tf.train.Example.FromString(record).features.feature
        except (DecodeError, RuntimeWarning) as err:
            return default_id, None, f"the record is not a tf.Example ({err})."
        row_id = rows.row_id(_example_id(feats.get(self._id_column)), default_id, self._id_column in feats)
        values = {}
        for key, feature in self._spec.items():
            if key not in feats:
                continue  # build_example leaves out a missing optional feature, reports a missing required one
            kind = feats[key].WhichOneof("kind")
            value = list(getattr(feats[key], kind).value) if kind else []
            if not value and feature.optional:
                continue  # an empty list parses as missing
            if len(value) != 1:
                return row_id, None, f"feature {key!r} has {len(value)} values; the model expects exactly 1."
            values[key] = value[0]
        try:  # a float-valued int64 feature becomes an int64_list; a number for a text feature its str
            return row_id, build_example(values, self._spec), None
        except RequestError as err:
            return row_id, None, str(err)


def _masked_crc32c(data: bytes) -> int:
    """The checksum TFRecord framing stores: CRC-32C rotated right by 15 bits plus a constant."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@contextlib.contextmanager
def open_tfrecords(path: str) -> Iterator[Iterator[bytes]]:
    """The checked records (:func:`tfrecords`) of a TFRecord file on any Beam filesystem, gzip when it ends in .gz:
    Python's gzip, unlike Beam's, raises at a stream cut short, so no lost record goes uncounted."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        yield tfrecords(gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw)


def tfrecords(handle: BinaryIO) -> Iterator[bytes]:
    """The records of a TFRecord stream, checked as they are read; ValueError at the first damaged one (a gzip
    stream's own errors, e.g. EOFError when it is cut short, pass through).

    Each record is ``uint64 length, masked crc32c(length), data, masked crc32c(data)`` (little-endian). Read here
    rather than with ``tf.data``, whose gzip reader fails a whole buffer (up to 256 KB) at a damaged end, so that
    every record before the damage is scored; CRC-32C is crcmod's, the one Beam's own TFRecord reader uses.
    """
    while True:
        header = handle.read(12)
        if not header:
            return
        if len(header) < 12:
            raise ValueError(f"the record header is cut short ({len(header)} of 12 bytes)")
        length, length_crc = struct.unpack("<QI", header)
        if length_crc != _masked_crc32c(header[:8]):
            raise ValueError("the record length fails its checksum")
        data, footer = handle.read(length), handle.read(4)
        if len(data) < length or len(footer) < 4:
            raise ValueError(f"the record is cut short ({len(data)} of {length} bytes)")
        if struct.unpack("<I", footer)[0] != _masked_crc32c(data):
            raise ValueError("the record data fails its checksum")
        yield data


def id_text(value: Any) -> str | None:
    """A row's id as text, the same for every input format: bytes decoded as UTF-8, a whole float (an integer id
    column with blanks, which pandas stores as float64) without its ``.0``; None for a missing or empty value."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = str(int(value)) if value.is_integer() else repr(value)
    return str(value) or None


def _example_id(feature: Any) -> str | None:
    """The id a tf.Example carries in a feature (one value of any kind), else None."""
    if feature is None or not feature.WhichOneof("kind"):
        return None
    values = list(getattr(feature, feature.WhichOneof("kind")).value)
    return id_text(values[0]) if len(values) == 1 else None

