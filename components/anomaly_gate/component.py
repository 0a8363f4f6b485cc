"""AnomalyGate component: spec and component; the executor is in executor.py."""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import BaseChannel, Channel, component_spec, standard_artifacts

from components.anomaly_gate.executor import ANOMALIES_KEY, RESULT_KEY, SCHEMA_KEY, Executor


class AnomalyGateSpec(component_spec.ComponentSpec):
    PARAMETERS = {}
    INPUTS = {
        ANOMALIES_KEY: component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        SCHEMA_KEY: component_spec.ChannelParameter(type=standard_artifacts.Schema, optional=True),
    }
    OUTPUTS = {RESULT_KEY: component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies)}


class AnomalyGate(base_component.BaseComponent):
    """Fails its execution, and so the run, when the validated data has any anomaly.

    Put it between ExampleValidator and the first step that consumes the data (``add_upstream_node``).
    Its output is an empty-anomalies record of the data that passed, for lineage.
    """

    SPEC_CLASS = AnomalyGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, anomalies: BaseChannel, schema: BaseChannel | None = None) -> None:
        super().__init__(spec=AnomalyGateSpec(
            anomalies=anomalies, schema=schema, result=Channel(type=standard_artifacts.ExampleAnomalies)))
