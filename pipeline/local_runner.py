"""Run the pipeline on this machine: LocalDagRunner, Beam DirectRunner, ML Metadata in SQLite."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx


def run(pipeline: tfx.dsl.Pipeline, run_options: Any = None) -> None:
    """Run ``pipeline`` (all of it, or the part ``run_options`` selects) with its temporary files in `scratch`."""
    with scratch():
        tfx.orchestration.LocalDagRunner().run(pipeline, run_options=run_options)


@contextlib.contextmanager
def scratch() -> Iterator[str]:
    """A temporary directory for everything the run puts in the system's temp folder, deleted afterwards.

    TFX's Beam executors build a ~50 MB source package of TFX (``tfx_ephemeral``, for remote Beam workers) in a new
    temporary directory at every execution and never delete it (1,443 of them, 66 GB, had filled the development
    machine's disk). ``tempfile`` and ``TMPDIR`` (Beam's worker processes) point here meanwhile.
    """
    previous = tempfile.tempdir, os.environ.get("TMPDIR")
    with tempfile.TemporaryDirectory(prefix="gmvae-run-", ignore_cleanup_errors=True) as path:
        tempfile.tempdir, os.environ["TMPDIR"] = path, path
        try:
            yield path
        finally:
            tempfile.tempdir = previous[0]
            if previous[1] is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = previous[1]


def sqlite_config(path: str) -> metadata_store_pb2.ConnectionConfig:
    """The ML Metadata connection to the SQLite file at ``path`` (created on first use)."""
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(path)


@dataclasses.dataclass(frozen=True)
class RunOutput:
    """One output artifact of a run: the component that wrote it, its type, the execution's state (COMPLETE,
    CACHED...), its uri and its custom properties (e.g. a blessing's ``blessing_message``, a push's
    ``pushed_destination``)."""

    component: str
    kind: str
    state: str
    uri: str
    properties: dict[str, Any] = dataclasses.field(default_factory=dict)


def _property(value: metadata_store_pb2.Value) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field in ("int_value", "double_value", "string_value", "bool_value") else None


def latest_run_outputs(metadata_path: str, pipeline_name: str) -> list[RunOutput]:
    """Every output of the newest run, in run order."""
    store = metadata_store.MetadataStore(sqlite_config(metadata_path))
    runs = [c for c in store.get_contexts_by_type("pipeline_run")
            if any(p.name == pipeline_name for p in store.get_parent_contexts_by_context(c.id))
            or pipeline_name in c.name]
    if not runs:
        return []
    newest = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    types = {t.id: t.name for t in store.get_artifact_types()}
    outputs = []
    for execution in sorted(store.get_executions_by_context(newest.id), key=lambda e: e.id):
        nodes = [c.name for c in store.get_contexts_by_execution(execution.id) if c.type == "node"]
        component = nodes[0].rsplit(".", 1)[-1] if nodes else str(execution.id)
        state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
               if e.type == metadata_store_pb2.Event.OUTPUT]
        for artifact in store.get_artifacts_by_id(ids):
            properties = {name: _property(value) for name, value in artifact.custom_properties.items()}
            outputs.append(RunOutput(component, types.get(artifact.type_id, "?"), state, artifact.uri, properties))
    return outputs
