"""Names of the ClusteringEvaluator's outputs that other components read (import-light: no TensorFlow, no Beam)."""

# In the blessing: the candidate's metrics, which the pusher copies into the champion record.
METRICS_FILE = "metrics.json"
# In the evaluation: the human-readable report.
REPORT_MD = "report.md"
