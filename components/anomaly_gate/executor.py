"""Read ExampleValidator's anomalies per split and fail with one plain-words line per anomaly."""

from __future__ import annotations

import os
from typing import Any

from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

ANOMALIES_FILE = "SchemaDiff.pb"
ANOMALIES_KEY = "anomalies"
SCHEMA_KEY = "schema"
RESULT_KEY = "result"


class DataAnomaliesError(RuntimeError):
    """The data does not match its schema; the message lists every anomaly."""


def expectation(feature: schema_pb2.Feature) -> str:
    """What the schema expects of a feature, e.g. ``INT in [0, 16], in 100% of examples``."""
    text = schema_pb2.FeatureType.Name(feature.type)
    domain = feature.WhichOneof("domain_info")
    if domain in ("int_domain", "float_domain"):
        bounds = getattr(feature, domain)
        low = bounds.min if bounds.HasField("min") else "-inf"
        high = bounds.max if bounds.HasField("max") else "inf"
        text += f" in [{low}, {high}]"
    if feature.presence.min_fraction:
        text += f", in {feature.presence.min_fraction:.0%} of examples"
    return text


def describe(split: str, anomalies: anomalies_pb2.Anomalies, schema: schema_pb2.Schema | None = None) -> list[str]:
    """One line per anomaly: where (split, feature), what was found and what the schema expects."""
    expected = {feature.name: expectation(feature) for feature in (schema.feature if schema else [])}
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        suffix = f" (expected: {expected[feature]})" if feature in expected else ""
        for reason in info.reason or [info]:
            lines.append(f"{split} split, feature '{feature}': {reason.short_description}. "
                         f"{reason.description}{suffix}")
    for reason in anomalies.dataset_anomaly_info.reason:
        lines.append(f"{split} split, whole dataset: {reason.short_description}. {reason.description}")
    if anomalies.data_missing:
        lines.append(f"{split} split: no data at all.")
    return lines


def read_anomalies(path: str) -> anomalies_pb2.Anomalies:
    with fileio.open(path, "rb") as f:
        return anomalies_pb2.Anomalies.FromString(f.read())


class Executor(base_executor.BaseExecutor):
    """Raise ``DataAnomaliesError`` listing every anomaly of every split, or pass an empty record on."""

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties: dict[str, Any]) -> None:
        anomalies = artifact_utils.get_single_instance(input_dict[ANOMALIES_KEY])
        schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
            artifact_utils.get_single_uri(input_dict[SCHEMA_KEY]))) if input_dict.get(SCHEMA_KEY) else None
        problems = []
        for split in artifact_utils.decode_split_names(anomalies.split_names):
            path = os.path.join(artifact_utils.get_split_uri([anomalies], split), ANOMALIES_FILE)
            problems += describe(split, read_anomalies(path), schema)
        if problems:
            message = f"the input data has {len(problems)} anomalies, so training was not started:\n  - " + (
                "\n  - ".join(problems))
            logging.error(message)
            raise DataAnomaliesError(message)
        result = artifact_utils.get_single_instance(output_dict[RESULT_KEY])
        result.split_names = anomalies.split_names
        for split in artifact_utils.decode_split_names(anomalies.split_names):
            split_dir = artifact_utils.get_split_uri([result], split)
            fileio.makedirs(split_dir)
            with fileio.open(os.path.join(split_dir, ANOMALIES_FILE), "wb") as f:
                f.write(anomalies_pb2.Anomalies().SerializeToString())
        logging.info("No anomalies in splits %s.", anomalies.split_names)
