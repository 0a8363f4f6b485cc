"""Cluster-side constants: the one source of truth for the image, storage locations and the nightly schedule.

Edit these for your cluster (or override them per call with the CLI flags of ``kubeflow.runner`` and
``kubeflow.schedule``). Nothing here is a credential: access comes from the pods' Kubernetes service account.
"""

from __future__ import annotations

from pipeline import configs

# Image built from kubeflow/Dockerfile; pin a digest (``...@sha256:...``) in production for reproducible runs.
IMAGE_REPOSITORY = "us-docker.pkg.dev/my-gcp-project/gmvae/gmvae-pipeline"
IMAGE_TAG = "0.1.0"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
# Where the project's source lives inside the image (schema files etc. are read from here at run time).
IMAGE_PROJECT_DIR = "/opt/gmvae"

# Storage every pipeline pod can read and write through tf.io.gfile (gs://, s3:// or a shared mount).
BUCKET = "gs://my-gmvae-bucket"
PIPELINE_ROOT = f"{BUCKET}/kfp/{configs.PIPELINE_NAME}"
DATA_ROOT = f"{BUCKET}/data/{configs.PIPELINE_NAME}"
# The Pusher writes <SERVING_DIR>/<integer version>/saved_model.pb; TF Serving's base_path points here.
SERVING_DIR = f"{BUCKET}/serving/gmvae"

# Beam inside the component pods (DirectRunner). Dataflow/Flink/Spark: see kubeflow/README.md.
DEFAULT_BEAM_ARGS = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")

# Multi-worker training on Vertex AI Training (used only with --train-workers > 1).
GCP_REGION = "us-central1"
TRAIN_MACHINE_TYPE = "n1-standard-8"

# Multi-worker training on open-source Kubeflow as a TFJob (--distribution tfjob): each replica's requests/limits.
TFJOB_CPU = "4"
TFJOB_MEMORY = "16Gi"

# Where the compiled spec goes by default (outputs/ is git-ignored).
COMPILED_SPEC = f"outputs/kubeflow/{configs.PIPELINE_NAME}.json"

# Kubeflow Pipelines schedule. KFP cron has 6 fields, seconds first: 02:00 every day (cluster time zone, UTC).
EXPERIMENT = configs.PIPELINE_NAME
RECURRING_RUN_NAME = f"{configs.PIPELINE_NAME}-nightly"
SCHEDULE_CRON = "0 0 2 * * *"
MAX_CONCURRENCY = 1
NO_CATCHUP = True
# Kubernetes service account the runs use (its Workload Identity grants the bucket access); None = KFP default.
RUN_SERVICE_ACCOUNT: str | None = None
