"""Beam scoring of serialized tf.Examples with a SavedModel's serving signature, and the metrics of the scores.

Each scored batch is written as one record (an ``.npz`` of the model outputs plus the parsed label, and when asked
the raw numeric and categorical input columns and the model input from the ``transform_features`` signature) to
gzip TFRecords, so the per-example scores stay in the evaluation artifact.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx.dsl.io import fileio

from model import features
from model.metrics import clustering_report
from serving.feature_spec import FeatureSpec, conform_records, read_feature_spec
from serving.training_statistics import blank_fills

LABEL = "label"
HAS_LABEL = "has_label"
INPUTS = "inputs"
CATEGORIES = "categories"
MODEL_INPUT = "model_input"
RECORD_KEY = "record_key"  # hash of the serialized example: pairs the scores of two models example by example
MAX_BATCH_SIZE = 256


def _first_number(feature: tf.train.Feature | None) -> float:
    if feature is not None:
        for values in (feature.float_list.value, feature.int64_list.value):
            if values:
                return float(values[0])
    return float("nan")


def _label_text(feature: tf.train.Feature | None) -> str | None:
    """The label as text (labels are categories), or None when the example has none."""
    if feature is None:
        return None
    for values in (feature.int64_list.value, feature.bytes_list.value, feature.float_list.value):
        if values:
            value = values[0]
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def example_files(split_uri: str) -> list[str]:
    """The TFRecord files of one split directory."""
    files = sorted(fileio.glob(os.path.join(split_uri, "*")))
    if not files:
        raise ValueError(f"no example files in {split_uri}")
    return files


def numeric_feature_names(split_uri: str, label_key: str) -> list[str]:
    """The numeric feature columns (not id or label) of the first example of a split, in natural order."""
    dataset = tf.data.TFRecordDataset(example_files(split_uri), compression_type="GZIP").take(1)
    for record in dataset:
        example = tf.train.Example.FromString(record.numpy())
        names = [
            name
            for name, feature in example.features.feature.items()
            if features.is_feature(name) and name != label_key and feature.WhichOneof("kind") != "bytes_list"
        ]
        return sorted(names, key=features.natural_key)
    raise ValueError(f"no examples in {split_uri}")


def _first_text(feature: tf.train.Feature | None) -> str:
    """A categorical value as text ("" when the example has none)."""
    if feature is None or not feature.bytes_list.value:
        return _label_text(feature) or ""
    return feature.bytes_list.value[0].decode("utf-8", "replace")


def feature_columns(split_uri: str, label_key: str, n_examples: int = 200) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns (not id or label) seen in the first examples of a split, natural
    order; a column is categorical when it holds text (bytes). Several examples are read because a column with
    missing values is absent from some."""
    dataset = tf.data.TFRecordDataset(example_files(split_uri), compression_type="GZIP").take(n_examples)
    kinds: dict[str, str] = {}
    for record in dataset:
        for name, feature in tf.train.Example.FromString(record.numpy()).features.feature.items():
            kind = feature.WhichOneof("kind")
            if features.is_feature(name) and name != label_key and kind is not None:
                kinds[name] = "categorical" if kind == "bytes_list" or kinds.get(name) == "categorical" else "numeric"
    ordered = sorted(kinds, key=features.natural_key)
    return [n for n in ordered if kinds[n] == "numeric"], [n for n in ordered if kinds[n] == "categorical"]


class ScoreBatches(beam.DoFn):
    """Scores batches of serialized tf.Examples with the `serving_default` signature of one SavedModel.

    Optionally keeps the raw numeric columns `input_names` (NaN where missing), the categorical columns
    `category_names` (text, "" where missing) and, with `model_input`, the model input of every example from the
    `transform_features` signature (when the model has it). ``data_spec`` is how the model trained on the examples
    parses them (`read_feature_spec`); a model parsing a number column as the other number kind (a champion trained
    on a night when ExampleGen inferred the other) is given it converted, and one needing a value in every row of a
    column the examples may leave blank is given its training value there (`conform_records`, `blank_fills`).
    """

    def __init__(
        self,
        model_path: str,
        label_key: str,
        input_names: Sequence[str] = (),
        category_names: Sequence[str] = (),
        model_input: bool = False,
        data_spec: FeatureSpec | None = None,
    ) -> None:
        self._model_path = model_path
        self._data_kinds = {name: raw.dtype for name, raw in (data_spec or {}).items()}
        self._data_optional = [name for name, raw in (data_spec or {}).items() if raw.optional]
        self._label_key = label_key
        self._input_names = list(input_names)
        self._category_names = list(category_names)
        self._model_input = model_input

    def setup(self) -> None:
        signatures = tf.saved_model.load(self._model_path).signatures
        self._predict = signatures[features.SERVING_SIGNATURE]
        self._transform = signatures.get(features.TRANSFORM_SIGNATURE) if self._model_input else None
        self._spec = read_feature_spec(self._model_path) if self._data_kinds else {}
        self._fills = blank_fills(self._model_path, self._spec, self._data_optional)[0] if self._data_optional else {}

    def process(self, batch: list[bytes]) -> Iterator[bytes]:
        parsed = conform_records(batch, self._spec, self._data_kinds, self._fills)  # the same records unless needed
        outputs = self._predict(**{features.SERVING_INPUT_KEY: tf.constant(parsed)})
        arrays = {key: outputs[key].numpy() for key in features.OUTPUT_KEYS}
        if self._transform is not None:
            transformed = self._transform(**{features.SERVING_INPUT_KEY: tf.constant(parsed)})
            arrays[MODEL_INPUT] = transformed[features.TRANSFORMED_FEATURES_KEY].numpy()
        arrays[RECORD_KEY] = np.array([hashlib.sha1(record).hexdigest() for record in batch])
        examples = [tf.train.Example.FromString(record).features.feature for record in batch]
        labels = [_label_text(example.get(self._label_key)) for example in examples]
        arrays[HAS_LABEL] = np.array([label is not None for label in labels])
        arrays[LABEL] = np.array([label or "" for label in labels], dtype=str)
        if self._input_names:
            arrays[INPUTS] = np.array(
                [[_first_number(example.get(name)) for name in self._input_names] for example in examples],
                dtype=np.float32,
            )
        if self._category_names:
            arrays[CATEGORIES] = np.array(
                [[_first_text(example.get(name)) for name in self._category_names] for example in examples], dtype=str
            ).reshape(len(examples), len(self._category_names))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        yield buffer.getvalue()


def score(
    pipeline: beam.Pipeline,
    split_uri: str,
    model_paths: Mapping[str, str],
    output_dir: str,
    label_key: str,
    input_names: Mapping[str, Sequence[str]] | None = None,
    category_names: Mapping[str, Sequence[str]] | None = None,
    model_input: Sequence[str] = (),
    kinds_from: str | None = None,
) -> dict[str, str]:
    """Adds to `pipeline` the scoring of one split by every model of `model_paths` ({name: SavedModel dir}).

    The examples are read once; `input_names[name]` (numeric) and `category_names[name]` (text) are raw features
    kept for that model's report, and the models named in `model_input` also keep their model input. `kinds_from` is
    the model trained on these examples (the candidate), whose raw features are theirs: another model parsing a
    number column as the other number kind is given it converted, and one needing a value in every row of a column
    with blanks its training value there (`ScoreBatches`).
    Returns {name: file prefix of its scores} (run the pipeline, then `read_scores`).
    """
    batches = (
        pipeline
        | "ReadExamples" >> beam.io.ReadFromTFRecord(os.path.join(split_uri, "*"), coder=beam.coders.BytesCoder())
        | "Batch" >> beam.BatchElements(max_batch_size=MAX_BATCH_SIZE)
    )
    data_spec = read_feature_spec(kinds_from) if kinds_from else {}
    prefixes = {}
    for name, path in model_paths.items():
        prefixes[name] = os.path.join(output_dir, name)
        _ = (
            batches
            | f"Score[{name}]" >> beam.ParDo(ScoreBatches(
                path, label_key, (input_names or {}).get(name, ()), (category_names or {}).get(name, ()),
                name in model_input, data_spec if path != kinds_from else None))
            | f"Write[{name}]" >> beam.io.WriteToTFRecord(prefixes[name], file_name_suffix=".tfrecord.gz")
        )
    return prefixes


def read_scores(prefix: str) -> dict[str, np.ndarray]:
    """All per-example arrays written under `prefix`, concatenated."""
    files = sorted(fileio.glob(prefix + "*"))
    parts: dict[str, list[np.ndarray]] = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        with np.load(io.BytesIO(record.numpy())) as batch:
            for key in batch.files:
                parts.setdefault(key, []).append(batch[key])
    if not parts:
        raise ValueError(f"no scored examples under {prefix}")
    return {key: np.concatenate(arrays) for key, arrays in parts.items()}


def metrics_from_scores(scores: Mapping[str, np.ndarray], cluster_ids: Sequence[int]) -> dict[str, float]:
    """Mean ELBO, occupancy and silhouette over the model's ``cluster_ids``; acc, NMI and ARI only when every
    example has a label."""
    position = {int(i): k for k, i in enumerate(cluster_ids)}
    clusters = np.array([position[int(c)] for c in scores[features.CLUSTER]], dtype=np.int64)
    n_clusters = len(position)
    labels = scores[LABEL] if bool(np.all(scores[HAS_LABEL])) else None
    metrics = clustering_report(labels, clusters, n_clusters, latent=scores[features.LATENT_MEAN])
    metrics.update({features.MEAN_ELBO: float(np.mean(scores[features.ELBO])),
                    features.N_EXAMPLES: int(clusters.size), features.N_CLUSTERS: n_clusters})
    return metrics
