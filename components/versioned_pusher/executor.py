"""Push blessed models as integer versions that appear atomically, and keep a champion record beside them.

TF Serving loads every integer directory under the base directory. A version is first written to a hidden
temporary directory (TF Serving ignores non-integer names) and then renamed into place, so an interrupted push
never leaves a partial version that could be loaded; existing versions are never touched. After the rename, the
champion record (:mod:`serving.champion`, ``champion.json`` in the same directory) records the version, its path,
the source model and its evaluation metrics, so the next evaluation can compare against the serving model on any
runner, without an ML Metadata Resolver.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from typing import Any

from absl import logging
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, path_utils, proto_utils

from components.clustering_evaluator.constants import CANDIDATE_METRICS_FILE, METRICS_FILE
from components.versioned_pusher.constants import NOT_PUSHED_REASON
from serving.champion import (
    Champion,
    champion_path,
    read_champion,
    registry_of_versions,
    versions_by_generation,
    write_champion,
)
from serving.cluster_ids import read_registry
from serving.store import TMP_PREFIX, versions


def push_version(model_path: str, serving_dir: str, issued: int = 0) -> tuple[int, str]:
    """Copy ``model_path`` to the next integer version under ``serving_dir``, above every version there and above
    ``issued`` (the highest version the champion record knows was pushed, so a rolled-back number is never given to
    another model); returns (version, path).

    Leftovers of interrupted pushes (hidden staging directories) are removed first: pushes of one serving
    directory are serialised by the pipeline (one run at a time).
    """
    fileio.makedirs(serving_dir)
    for name in fileio.listdir(serving_dir):
        leftover = os.path.join(serving_dir, name.rstrip("/"))
        if name.startswith(TMP_PREFIX) and fileio.isdir(leftover):
            fileio.rmtree(leftover)
        elif name.startswith(TMP_PREFIX):
            fileio.remove(leftover)
    staging = os.path.join(serving_dir, f"{TMP_PREFIX}{uuid.uuid4().hex}")
    io_utils.copy_dir(model_path, staging)
    version = max([issued, *versions(serving_dir)]) + 1
    target = os.path.join(serving_dir, str(version))
    fileio.rename(staging, target, overwrite=False)
    return version, target


def registry_summary(serving_path: str, version: int, previous: Champion | None) -> dict[str, Any]:
    """The pushed model's cluster registry with ``versions`` {generation: serving version}: the previous champion's
    and this push's (empty for a model without a registry). ``next_id`` never goes down and no introduced ID is
    forgotten: pushing an older model again, or a model aligned after a rollback, keeps every ID the record knew as
    issued (:meth:`Registry.remembering`). Without a previous record (deleted, or versions pushed by another
    pipeline) both come from the versions in the serving directory (:func:`registry_of_versions`,
    :func:`versions_by_generation`), so neither restarts."""
    registry = read_registry(serving_path)
    if registry is None:
        return {}
    serving_dir = os.path.dirname(serving_path.rstrip("/"))
    if previous is None:
        registry = registry.remembering(registry_of_versions(serving_dir))
        by_generation = versions_by_generation(serving_dir)
    else:
        registry = registry.remembering(previous.registry)
        by_generation = dict(previous.cluster_registry.get("versions") or {})
    by_generation[str(registry.latest.generation)] = version
    return {**registry.to_json(), "versions": by_generation}


def _variables(model_path: str) -> dict[str, str]:
    """File name -> SHA-256 of each file of a SavedModel's ``variables/`` (its weights); empty when there is none."""
    folder = os.path.join(model_path, "variables")
    if not fileio.isdir(folder):
        return {}
    digests = {}
    for name in fileio.listdir(folder):
        path = os.path.join(folder, name.rstrip("/"))
        if not fileio.isdir(path):
            digest = hashlib.sha256()
            with fileio.open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
            digests[name] = digest.hexdigest()
    return digests


def same_weights(model_path: str, other_path: str) -> bool:
    """True when both SavedModels exist and their weights are byte for byte the same (a deterministic retrain on the
    same data and seed reproduces a model exactly)."""
    mine = _variables(model_path)
    return bool(mine) and mine == _variables(other_path)


def issued_version(champion: Champion | None) -> int:
    """The highest serving version the champion record knows was pushed (0 without a record)."""
    if champion is None:
        return 0
    return max([champion.version, *(int(v) for v in (champion.cluster_registry.get("versions") or {}).values())])


class Executor(pusher_executor.Executor):
    """Stock Pusher semantics (blessing check, ``pushed`` properties) with atomic integer versions."""

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            logging.info("Model is not blessed: nothing pushed.")
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError("VersionedPusher pushes to a filesystem destination only.")
        serving_dir = destination.filesystem.base_directory
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        record = champion_path(serving_dir)
        champion = read_champion(record)  # ChampionRecordError (the evaluator's too) on an unusable record
        if champion is not None and champion.model_id == model.id and fileio.exists(champion.serving_path):
            logging.info("Model %d is already serving as version %d: nothing copied.", model.id, champion.version)
            self._MarkPushed(model_push, pushed_destination=champion.serving_path,
                             pushed_version=str(champion.version))
            return
        model_path = self.GetModelPath(input_dict)
        if (champion is not None and not fileio.exists(champion.serving_path)  # the record's version: rolled back
                and same_weights(model_path, path_utils.serving_model_path(champion.model_uri))):
            # this is the rolled-back model, or a retrain on the same data and seed that reproduced it
            reason = (f"this model has the weights of version {champion.version}, which was rolled back (its "
                      "directory is gone), so it is not pushed again")
            logging.warning("Model %d: %s.", model.id, reason)
            model_push.set_string_custom_property(NOT_PUSHED_REASON, reason)
            self._MarkNotPushed(model_push)
            return
        version, serving_path = push_version(model_path, serving_dir, issued_version(champion))
        logging.info("Model pushed as version %d: %s", version, serving_path)

        write_champion(record, Champion(
            version=version,
            serving_path=serving_path,
            model_uri=model.uri,
            model_id=model.id,
            metrics=self._blessing_metrics(input_dict),
            pushed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            cluster_registry=registry_summary(serving_path, version, champion),
        ))
        io_utils.copy_dir(serving_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))

    @staticmethod
    def _blessing_metrics(input_dict: dict[str, list]) -> dict[str, Any]:
        blessings = input_dict.get(standard_component_specs.MODEL_BLESSING_KEY) or []
        if not blessings:
            return {}
        for name in (CANDIDATE_METRICS_FILE, METRICS_FILE):  # METRICS_FILE: a blessing written before the rename
            path = os.path.join(blessings[0].uri, name)
            if fileio.exists(path):
                with fileio.open(path, "r") as f:
                    return json.load(f)
        return {}
