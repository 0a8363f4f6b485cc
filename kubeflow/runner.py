"""Compile the pipeline for Kubeflow Pipelines v2 (``KubeflowV2DagRunner``) into a pipeline-spec file.

The pipeline is the same ``pipeline.pipeline.create_pipeline`` that ``make run`` executes locally; this module only
chooses where it runs. Nothing here contacts a cluster: upload and scheduling are ``kubeflow.schedule``'s job.

Examples:
  python -m kubeflow.runner                                     # defaults from kubeflow/config.py
  python -m kubeflow.runner --image REGISTRY/gmvae-pipeline:0.1.0 --pipeline-root gs://bucket/kfp \\
      --data-root gs://bucket/data --serving-dir gs://bucket/serving/gmvae
  python -m kubeflow.runner --beam-arg=--runner=DataflowRunner --beam-arg=--project=my-project \\
      --beam-arg=--region=us-central1 --beam-arg=--temp_location=gs://bucket/tmp
  python -m kubeflow.runner --train-workers 4 --gcp-project my-project   # Trainer on Vertex AI, 4 workers
  python -m kubeflow.runner --train-workers 4 --distribution tfjob      # Trainer as a TFJob, 4 workers
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from components.clustering_evaluator import bless_rules
from kubeflow import config
from pipeline import configs
from pipeline.cli import (
    DefaultsHelpFormatter,
    Parser,
    add_cluster_identity_flags,
    add_model_flags,
    model_settings,
    thresholds,
    tolerances,
)
from pipeline.data import CSV, TFRECORD, Column, DataError, column_report, feature_plan, scan_csv_source

VERTEX, TFJOB = "vertex", "tfjob"
DISTRIBUTIONS = (VERTEX, TFJOB)


class CompileError(ValueError):
    """The pipeline cannot be compiled with these arguments; the message says why in one sentence."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m kubeflow.runner",
        description="Compile the GMVAE clustering pipeline for Kubeflow Pipelines v2 into a pipeline-spec file "
        "(JSON PipelineJob, or IR YAML when --output ends in .yaml). Defaults come from kubeflow/config.py.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--output", default=config.COMPILED_SPEC,
                        help="file to write; '.json' writes a PipelineJob (Vertex AI Pipelines, kubeflow.schedule), "
                        "'.yaml' writes the bare pipeline IR (KFP UI upload)")
    parser.add_argument("--image", default=config.IMAGE,
                        help="container image every component runs in (built from kubeflow/Dockerfile)")
    parser.add_argument("--pipeline-name", type=pipeline_name, default=configs.PIPELINE_NAME,
                        help="pipeline name in KFP and ML Metadata: lower-case letters, digits and '-'")
    parser.add_argument("--pipeline-root", default=config.PIPELINE_ROOT,
                        help="artifact root all pipeline pods can read and write (gs://, s3:// or a shared mount)")
    parser.add_argument("--data-root", default=config.DATA_ROOT,
                        help="directory ExampleGen reads: CSV files or TFRecord files of tf.Example, as staged by "
                        "pipeline.data")
    parser.add_argument("--data-format", choices=(CSV, TFRECORD), default=CSV,
                        help="format of the files in --data-root")
    parser.add_argument("--columns-from", default=None, metavar="CSV",
                        help="a local CSV file or directory with the columns of the files in --data-root: every row "
                        "is classified as pipeline.run does (numbers; text one-hot encoded; blanks imputed with a "
                        "missing indicator; unusable columns dropped with the reason), the column report is printed "
                        "and this plan is compiled into the spec; default: every column numeric and complete")
    parser.add_argument("--scaling", choices=("auto",) + configs.SCALINGS, default="auto",
                        help="feature scaling in tf.Transform; auto: zscore for a table given by --columns-from, "
                        "global_minmax for images (--image-shape) and when no --columns-from is given")
    parser.add_argument("--schema", default=None,
                        help="schema.pbtxt as the pods see it (gs://... or a path in the image, e.g. "
                        f"{config.IMAGE_PROJECT_DIR}/pipeline/schema/digits/schema.pbtxt); default: inferred")
    parser.add_argument("--image-shape", type=image_shape, default=None, metavar="HxW",
                        help="height x width of image data (pixel columns px_###), e.g. 28x28; omit for tabular data")
    parser.add_argument("--thresholds", type=thresholds, default=bless_rules.DEFAULT_THRESHOLDS, metavar="JSON",
                        help=bless_rules.thresholds_help())
    parser.add_argument("--tolerances", type=tolerances, default=bless_rules.DEFAULT_TOLERANCES, metavar="JSON",
                        help=bless_rules.tolerances_help())
    parser.add_argument("--serving-dir", default=config.SERVING_DIR,
                        help="Pusher destination: receives <serving-dir>/<integer version>/saved_model.pb, the "
                        "directory TF Serving's base_path must point at")
    parser.add_argument("--beam-arg", action="append", default=None, metavar="ARG",
                        help="Beam pipeline option for every Beam-based component, repeatable, written with '=': "
                        "e.g. --beam-arg=--runner=DataflowRunner --beam-arg=--project=P --beam-arg=--region=R "
                        "--beam-arg=--temp_location=gs://B/tmp, or --beam-arg=--runner=FlinkRunner "
                        "--beam-arg=--flink_master=HOST:8081 --beam-arg=--environment_type=EXTERNAL; default: "
                        f"{' '.join(config.DEFAULT_BEAM_ARGS)}")
    parser.add_argument("--train-workers", type=int, default=1,
                        help="Trainer workers; above 1 the Trainer runs as a multi-worker job (see --distribution) "
                        "that sets TF_CONFIG, and the model then uses MultiWorkerMirroredStrategy")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS, default=VERTEX,
                        help="where --train-workers > 1 trains: vertex, a Vertex AI Training CustomJob (needs "
                        "--gcp-project); tfjob, a TFJob of the Kubeflow Training Operator in the cluster, submitted "
                        "and awaited by the Trainer step (kubeflow/tfjob.py)")
    parser.add_argument("--tfjob-namespace", default=None,
                        help="namespace of the TFJob (--distribution tfjob); default: the Trainer pod's namespace")
    parser.add_argument("--gcp-project", default=None, help="GCP project of the Vertex AI Training job "
                        "(required with --train-workers > 1 and --distribution vertex)")
    parser.add_argument("--gcp-region", default=config.GCP_REGION, help="Vertex AI region of the training job")
    parser.add_argument("--train-machine-type", default=config.TRAIN_MACHINE_TYPE,
                        help="Compute Engine machine type of each training worker")
    parser.add_argument("--no-cache", action="store_true", help="compile with caching disabled for every step")
    add_model_flags(parser)
    add_cluster_identity_flags(parser)
    return parser


def image_shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 28x28, got {text!r}") from err
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"expected a height and width of at least 1 pixel, got {text!r}")
    return height, width


# Kubeflow Pipelines v2 names (TFX's KubeflowV2DagRunner refuses others after building the whole pipeline).
PIPELINE_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def pipeline_name(text: str) -> str:
    if not PIPELINE_NAME_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected lower-case letters, digits and '-', starting with a letter or digit, at most 63 characters "
            f"(a Kubeflow pipeline name), got {text!r}")
    return text

def vertex_training_config(workers: int, image: str, project: str, region: str, machine_type: str) -> dict[str, Any]:
    """Trainer ``custom_config`` entries that run training as a Vertex AI CustomJob with ``workers`` replicas.

    Pool 0 is the chief (1 replica), pool 1 the remaining workers; Vertex AI sets ``TF_CONFIG`` in every replica
    (roles ``chief`` and ``worker``), which ``model.distribute.get_strategy`` turns into MultiWorkerMirroredStrategy.
    """
    from tfx.v1.extensions import google_cloud_ai_platform as gcai

    def pool(replicas: int) -> dict[str, Any]:
        return {"machine_spec": {"machine_type": machine_type}, "replica_count": replicas,
                "container_spec": {"image_uri": image}}

    return {
        gcai.ENABLE_VERTEX_KEY: True,
        gcai.VERTEX_REGION_KEY: region,
        gcai.TRAINING_ARGS_KEY: {"project": project, "job_spec": {"worker_pool_specs": [pool(1), pool(workers - 1)]}},
    }


def check_args(args: argparse.Namespace) -> None:
    """Fail fast, before TFX is imported, on arguments that cannot compile to a working pipeline."""
    if not args.output.endswith((".json", ".yaml", ".yml")):
        raise CompileError(f"--output {args.output!r} must end in .json (PipelineJob) or .yaml (pipeline IR).")
    if args.train_workers < 1:
        raise CompileError(f"--train-workers must be at least 1, not {args.train_workers}.")
    if args.train_workers > 1 and args.distribution == VERTEX and not args.gcp_project:
        raise CompileError("--train-workers above 1 runs training on Vertex AI and needs --gcp-project "
                           "(or --distribution tfjob).")
    for flag, value in (("--pipeline-root", args.pipeline_root), ("--data-root", args.data_root),
                        ("--serving-dir", args.serving_dir)):
        if not value.startswith(("gs://", "s3://", "/")):
            raise CompileError(f"{flag} {value!r} must be a gs://, s3:// or absolute path that the pipeline pods see.")


def scaling_for(args: argparse.Namespace, columns: list[Column] | None) -> str:
    """``--scaling``, with auto resolved: zscore for a table described by --columns-from, global_minmax otherwise."""
    if args.scaling != "auto":
        return args.scaling
    return configs.ZSCORE if columns is not None and args.image_shape is None else configs.GLOBAL_MINMAX


def pipeline_kwargs(args: argparse.Namespace, columns: list[Column] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``create_pipeline``; ``columns`` (from --columns-from) set the feature plan."""
    scaling = scaling_for(args, columns)
    kwargs: dict[str, Any] = {
        "pipeline_name": args.pipeline_name,
        "pipeline_root": args.pipeline_root,
        "data_root": args.data_root,
        "data_format": args.data_format,
        "preprocessing_fn": configs.PREPROCESSING_FN,
        "feature_plan": feature_plan(columns, scaling) if columns is not None else configs.FeaturePlan(scaling),
        "schema_path": args.schema,
        "beam_pipeline_args": list(args.beam_arg or config.DEFAULT_BEAM_ARGS),
        "enable_cache": not args.no_cache,
    }
    kwargs.update(
        run_fn=configs.RUN_FN,
        serving_model_dir=args.serving_dir,
        model_settings=model_settings(args).resolved(args.image_shape, scaling),
        thresholds=args.thresholds,
        regression_tolerances=args.tolerances,
        accept_resegmentation=args.accept_resegmentation,
        image_shape=args.image_shape,
        # The open-source KFP v2 backend cannot run Resolver nodes; the evaluator reads a champion record instead.
        use_resolver=False,
    )
    if args.train_workers > 1 and args.distribution == TFJOB:
        from kubeflow import tfjob

        kwargs["trainer_component"] = tfjob.Trainer
        kwargs["trainer_custom_config"] = tfjob.TFJobSettings(
            workers=args.train_workers, image=args.image, cpu=config.TFJOB_CPU, memory=config.TFJOB_MEMORY,
            namespace=args.tfjob_namespace, service_account=config.RUN_SERVICE_ACCOUNT).to_custom_config()
    elif args.train_workers > 1:
        from tfx.v1.extensions import google_cloud_ai_platform as gcai

        kwargs["trainer_component"] = gcai.Trainer
        kwargs["trainer_custom_config"] = vertex_training_config(
            args.train_workers, args.image, args.gcp_project, args.gcp_region, args.train_machine_type)
    return kwargs


def compile_pipeline(args: argparse.Namespace, columns: list[Column] | None = None) -> str:
    """Build the pipeline and write the spec to ``args.output``; returns the path written."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kfv2

    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(**pipeline_kwargs(args, columns))
    runner = kfv2.KubeflowV2DagRunner(
        config=kfv2.KubeflowV2DagRunnerConfig(default_image=args.image),
        output_dir=os.path.dirname(os.path.abspath(args.output)),
        output_filename=os.path.basename(args.output),
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    runner.run(pipeline, write_out=True)
    return args.output


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        columns = scan_csv_source(args.columns_from) if args.columns_from else None
        if columns is not None:
            print("columns:\n" + "\n".join(column_report(columns)))
        path = compile_pipeline(args, columns)
    except (CompileError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"compiled {args.pipeline_name} for image {args.image} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
