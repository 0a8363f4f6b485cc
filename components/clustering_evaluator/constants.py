"""Names of the ClusteringEvaluator's outputs that other components read (import-light: no TensorFlow, no Beam)."""

# In the evaluation: the whole record (decision, every model's metrics, notes, comparison, profiles, versions).
METRICS_FILE = "metrics.json"
# In the blessing: the candidate's metrics alone, which the pusher copies into the champion record.
CANDIDATE_METRICS_FILE = "candidate_metrics.json"
# The model being evaluated: its key in the evaluation record (METRICS_FILE) and its column in the comparison.
CANDIDATE = "candidate"
# In the evaluation: the human-readable report.
REPORT_MD = "report.md"
