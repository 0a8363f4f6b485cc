"""Names shared by the model, the pipeline, serving and scoring: the one source of truth."""

import re

ID_KEY = "id"
LABEL_KEY = "label"
RESERVED_KEYS = (ID_KEY, LABEL_KEY)

TRANSFORMED_FEATURES_KEY = "features"

SERVING_SIGNATURE = "serving_default"
FEATURES_SIGNATURE = "predict_features"
# serialized tf.Examples -> the model input [B, F] under TRANSFORMED_FEATURES_KEY (for the evaluator's baselines)
TRANSFORM_SIGNATURE = "transform_features"
SERVING_INPUT_KEY = "examples"
FEATURES_INPUT_KEY = "features"

CLUSTER = "cluster"
CLUSTER_PROBABILITIES = "cluster_probabilities"
LATENT_MEAN = "latent_mean"
ELBO = "elbo"
OUTPUT_KEYS = (CLUSTER, CLUSTER_PROBABILITIES, LATENT_MEAN, ELBO)

# The metric names: keys of model.metrics.clustering_report, of the evaluation's metrics.json and of the bless rules.
ACC, NMI, ARI, SILHOUETTE = "acc", "nmi", "ari", "silhouette"
# The silhouette of a model's clusters averaged over its own and the champion's latent spaces, on the same eval
# examples: comparable between the two models, as each one's own-space SILHOUETTE is not (evaluator, with a champion).
SILHOUETTE_BOTH = "silhouette_both_spaces"
MIN_SHARE, MIN_SHARE_VS_EQUAL, MAX_SHARE, EMPTY = "min_share", "min_share_vs_equal", "max_share", "empty"
MEAN_ELBO = "mean_elbo"  # added by the evaluator, which scores the ELBO
N_EXAMPLES, N_CLUSTERS = "n_examples", "n_clusters"  # beside the metrics in the evaluation: what they are over
LABELLED_METRICS = (ACC, NMI, ARI)  # computed only when every example has a label

# The spellings of a missing value in a table (compared stripped and lower-cased): pandas' default NA strings, "?"
# (UCI files) and Excel's error values; not "-", a class in some files (UCI credit approval's +/-). Staging writes
# them as empty fields, serving and batch scoring leave the feature out of the tf.Example (NaN in a dense
# predict_features row).
MISSING_TOKENS = frozenset({
    "", "#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "-nan", "1.#ind", "1.#qnan", "<na>", "n/a", "na", "nan",
    "null", "none", "?", "#div/0!", "#value!", "#ref!", "#num!", "#name?", "#null!",
})

# How CSV input is read, by staging and by batch scoring: UTF-8, and "-sig" drops the byte-order mark spreadsheet
# programs write, which would otherwise stick to the first column's name (a "label" column would become a feature).
CSV_ENCODING = "utf-8-sig"
# Options of every csv reader of the project (staging, batch scoring, the request helper): spaces after a comma, as in
# "1, 2, label" typed by hand, are not part of the next field, so " label" is the label and " 0.5" a number.
CSV_READER_OPTIONS = {"skipinitialspace": True}
# The file name endings of table input: CSV, plain or gzip-compressed (a compressed export is read as it is), and
# Parquet (staging writes it as CSV, each value as batch scoring reads it).
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_feature(name: str) -> bool:
    """True for every input column that is a model feature (not the id or the label)."""
    return name not in RESERVED_KEYS


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders ``px_2`` before ``px_10``: the feature order of the model input and of dense requests."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
