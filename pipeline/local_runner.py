"""Run the pipeline on this machine: LocalDagRunner, Beam DirectRunner, ML Metadata in SQLite."""

from __future__ import annotations

import dataclasses
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx


def run(pipeline: tfx.dsl.Pipeline) -> None:
    tfx.orchestration.LocalDagRunner().run(pipeline)


def sqlite_config(path: str):
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


def latest_run_artifacts(metadata_path: str, pipeline_name: str) -> list[tuple[str, str, str, str]]:
    """(component, output type, execution state, uri) for every output of the newest run, in run order."""
    return [(o.component, o.kind, o.state, o.uri) for o in latest_run_outputs(metadata_path, pipeline_name)]
