"""Stops the pipeline before training when ExampleValidator found anomalies, saying each one in plain words."""

from components.anomaly_gate.component import AnomalyGate

__all__ = ["AnomalyGate"]
