"""Bring a user's data source into the one layout ExampleGen reads: a directory of CSV or TFRecord files.

Sources: the bundled default (scikit-learn's digits), an MNIST-style ``.npz`` (``images``, ``labels``),
a CSV file or directory of CSVs, or TFRecord files of ``tf.Example``. Images are flattened row-major into
zero-padded ``px_###`` columns so the natural order of the feature names is the pixel order.
Staging is content-addressed: an unchanged source leaves the staged file untouched, so ExampleGen's input
fingerprint (and with it every cached downstream step) stays valid on a re-run.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import math
import os
import shutil
from dataclasses import dataclass

import numpy as np

from model.features import ID_KEY, LABEL_KEY, is_feature, natural_key

DEFAULT_SOURCE = "digits"
CSV = "csv"
TFRECORD = "tfrecord"
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecord.gz", ".tfrecords", ".gz")


class DataError(ValueError):
    """The input data cannot be used; the message says why in one sentence."""


@dataclass(frozen=True)
class StagedData:
    """Where ExampleGen reads from, and what the data looks like."""

    input_dir: str
    format: str
    feature_names: tuple[str, ...]
    image_shape: tuple[int, int] | None
    has_label: bool
    num_rows: int | None


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
    """Images [N, H, W] and optional labels [N] from an MNIST-style ``.npz`` file."""
    try:
        with np.load(path) as data:
            if "images" not in data:
                raise DataError(f"{path} has no 'images' array (found: {', '.join(data.files) or 'nothing'}).")
            images = data["images"]
            labels = data.get("labels")
    except (OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path} is not a readable .npz file ({err}).") from err
    if images.ndim != 3 or images.shape[0] == 0:
        raise DataError(f"{path}: 'images' must have shape [N, height, width] with N > 0, got {images.shape}.")
    if labels is not None and labels.shape != (images.shape[0],):
        raise DataError(f"{path}: 'labels' must have shape [{images.shape[0]}], got {labels.shape}.")
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
            prefix = [i] + ([int(labels[i])] if labels is not None else [])
            writer.writerow(prefix + values.tolist())

    _write_if_changed(path, rows)
    return names


def _csv_files(source: str) -> list[str]:
    if os.path.isdir(source):
        files = sorted(glob.glob(os.path.join(source, "*.csv")))
        if not files:
            raise DataError(f"{source} is a directory with no .csv files in it.")
        return files
    return [source]


def _number(value: str) -> float | None:
    """The finite float in a CSV field, or None."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def inspect_csv(path: str) -> tuple[list[str], bool]:
    """Numeric feature columns of a CSV (decided by the first data row) and whether it has a label column."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            first = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path} is not a text CSV file ({err}).") from err
    if not header:
        raise DataError(f"{path} is empty: a CSV needs a header row and at least one data row.")
    if len(set(header)) != len(header):
        duplicates = sorted({name for name in header if header.count(name) > 1})
        raise DataError(f"{path} repeats the column names {', '.join(duplicates)} in its header.")
    if first is None:
        raise DataError(f"{path} has a header but no data rows.")
    if len(first) != len(header):
        raise DataError(f"{path}: the first data row has {len(first)} fields but the header has {len(header)}.")
    numeric = [name for name, value in zip(header, first, strict=True)
               if is_feature(name) and _number(value) is not None]
    if not numeric:
        raise DataError(f"{path} has no numeric feature columns (columns: {', '.join(header)}).")
    return sorted(numeric, key=natural_key), LABEL_KEY in header


def copy_checked_csv(source: str, target: str, names: list[str], has_label: bool, first_id: int = 0) -> int:
    """Copy the id, label and feature columns of ``source`` to ``target``, checking every row; returns the row count.

    Every feature value must be a finite number and every row must have the header's field count: an invalid row
    stops staging with its line number instead of reaching training. Rows without an ``id`` column are numbered
    from ``first_id``. Other columns (free text, say) are left out: the model reads numeric features only.
    """
    kept = [ID_KEY] + ([LABEL_KEY] if has_label else []) + names
    rows = 0

    def write(f) -> None:
        nonlocal rows
        with open(source, newline="") as src:
            reader = csv.reader(src)
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
                    if _number(row[index[LABEL_KEY]]) is None:
                        raise DataError(f"{source}, line {line}: label {row[index[LABEL_KEY]]!r} is not a number.")
                    values.append(row[index[LABEL_KEY]])
                for name in names:
                    if _number(row[index[name]]) is None:
                        raise DataError(f"{source}, line {line}, column {name}: {row[index[name]]!r} is not a finite "
                                        "number.")
                    values.append(row[index[name]])
                writer.writerow(values)
                rows += 1

    try:
        _write_if_changed(target, write)
    except (UnicodeDecodeError, csv.Error) as err:
        os.remove(f"{target}.tmp")
        raise DataError(f"{source} is not a text CSV file ({err}).") from err
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


def stage(source: str, staging_dir: str) -> StagedData:
    """Make ``source`` readable by ExampleGen under ``staging_dir`` and describe it."""
    os.makedirs(staging_dir, exist_ok=True)
    if source == DEFAULT_SOURCE:
        images, labels = load_digits_arrays()
        return _stage_images(images, labels, staging_dir)
    if not os.path.exists(source) and not glob.glob(source):
        raise DataError(f"input {source!r} does not exist.")
    if source.endswith(".npz"):
        images, labels = load_npz_arrays(source)
        return _stage_images(images, labels, staging_dir)
    tfrecords = _tfrecord_files(source)
    if tfrecords:
        return _stage_tfrecords(tfrecords, staging_dir)
    files = _csv_files(source)
    names, has_label = inspect_csv(files[0])
    for extra in files[1:]:
        if inspect_csv(extra) != (names, has_label):
            raise DataError(f"{extra} has different columns from {files[0]}; all CSV files must share one header.")
    staged = [f"{i:05d}-{os.path.basename(path)}" for i, path in enumerate(files)]
    rows = 0
    for path, name in zip(files, staged, strict=True):
        rows += copy_checked_csv(path, os.path.join(staging_dir, name), names, has_label, first_id=rows)
    _clear_except(staging_dir, set(staged))
    return StagedData(staging_dir, CSV, tuple(names), _image_shape_for(names), has_label, rows)


def _stage_images(images: np.ndarray, labels: np.ndarray | None, staging_dir: str) -> StagedData:
    names = write_images_csv(images, labels, os.path.join(staging_dir, "data.csv"))
    _clear_except(staging_dir, {"data.csv"})
    return StagedData(staging_dir, CSV, tuple(names), tuple(images.shape[1:3]), labels is not None, len(images))


def _tfrecord_files(source: str) -> list[str]:
    candidates = sorted(glob.glob(os.path.join(source, "*") if os.path.isdir(source) else source))
    return [p for p in candidates if os.path.isfile(p) and p.endswith(_TFRECORD_SUFFIXES)]


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
    _copy_if_changed(files, staging_dir)
    _clear_except(staging_dir, {os.path.basename(p) for p in files})
    return StagedData(staging_dir, TFRECORD, tuple(names), _image_shape_for(names), LABEL_KEY in feats, None)


def _copy_if_changed(files: list[str], staging_dir: str) -> None:
    for path in files:
        target = os.path.join(staging_dir, os.path.basename(path))
        if os.path.abspath(path) == os.path.abspath(target):
            continue
        if not os.path.exists(target) or _sha256(target) != _sha256(path):
            shutil.copyfile(path, f"{target}.tmp")
            os.replace(f"{target}.tmp", target)


def _clear_except(directory: str, keep: set[str]) -> None:
    for name in os.listdir(directory):
        if name not in keep:
            os.remove(os.path.join(directory, name))
