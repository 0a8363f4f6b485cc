"""The one pipeline definition every runner uses.

ingest -> statistics -> schema -> validate (stop on anomalies) -> transform -> train
       -> evaluate (bless or reject) -> push -> score
"""

from __future__ import annotations

from typing import Any

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.anomaly_gate import AnomalyGate
from components.clustering_evaluator import ClusteringEvaluator
from components.versioned_pusher import VersionedPusher
from model.features import OUTPUT_KEYS, SERVING_SIGNATURE
from pipeline.configs import CHAMPION_RECORD_KEY, CHECKPOINT_ROOT_KEY, IMAGE_SHAPE_KEY, FeaturePlan, ModelSettings
from pipeline.data import CSV
from serving.champion import champion_path


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    data_format: str,
    preprocessing_fn: str,
    run_fn: str,
    feature_plan: FeaturePlan,
    serving_model_dir: str,
    model_settings: ModelSettings,
    thresholds: dict[str, float],
    regression_tolerances: dict[str, float],
    accept_resegmentation: bool = False,
    image_shape: tuple[int, int] | None = None,
    schema_path: str | None = None,
    use_resolver: bool = True,
    trainer_component: type = tfx.components.Trainer,
    trainer_custom_config: dict[str, Any] | None = None,
    checkpoint_root: str | None = None,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    beam_pipeline_args: list[str] | None = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """Assemble the pipeline; every setting is an argument so runners only choose where it runs.

    ``use_resolver`` adds a LatestBlessedModelStrategy Resolver as the evaluator's baseline (local runner,
    Vertex AI); the open-source Kubeflow Pipelines v2 backend cannot run Resolver nodes, so there the
    evaluator compares against the champion record our pusher keeps beside ``serving_model_dir``.
    ``trainer_component`` / ``trainer_custom_config`` swap in another Trainer, e.g. the Vertex AI Training one for
    multi-worker training (``kubeflow.runner --train-workers``). Training checkpoints go under ``checkpoint_root``
    (default ``<pipeline_root>/training-checkpoints``), so a retried Trainer resumes where a killed one stopped.
    The Trainer aligns the candidate's cluster IDs to the Resolver's model, or without a Resolver to the champion
    record's; ``accept_resegmentation`` waives the evaluator's ``min_agreement_with_champion`` for one run.
    """
    if data_format == CSV:
        example_gen = tfx.components.CsvExampleGen(input_base=data_root)
    else:
        example_gen = tfx.components.ImportExampleGen(input_base=data_root)
    examples = example_gen.outputs["examples"]

    statistics_gen = tfx.components.StatisticsGen(examples=examples)
    if schema_path:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                              infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"], schema=schema_gen.outputs["schema"])
    transform = tfx.components.Transform(
        examples=examples,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=preprocessing_fn,
        custom_config=feature_plan.to_custom_config(),
        materialize=False,  # the Trainer applies the transform graph to the raw examples itself
    )
    transform.add_upstream_node(anomaly_gate)
    baseline_model = None
    components = [example_gen, statistics_gen, schema_gen, example_validator, anomaly_gate, transform]
    if use_resolver:
        resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")
        components.append(resolver)
        baseline_model = resolver.outputs["model"]

    # The Trainer reads the raw examples (and applies the tf.Transform graph itself) so that it can score the
    # champion, which takes raw examples, on the same eval examples and align its cluster IDs to the champion's.
    trainer = trainer_component(
        run_fn=run_fn,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        base_model=baseline_model,
        custom_config={
            **model_settings.to_custom_config(),
            **feature_plan.to_custom_config(),
            IMAGE_SHAPE_KEY: list(image_shape) if image_shape else None,
            CHECKPOINT_ROOT_KEY: checkpoint_root or f"{pipeline_root}/training-checkpoints",
            CHAMPION_RECORD_KEY: champion_path(serving_model_dir),
            **(trainer_custom_config or {}),
        },
    )
    trainer.add_upstream_node(anomaly_gate)
    components.append(trainer)

    evaluator = ClusteringEvaluator(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=baseline_model,
        thresholds=thresholds,
        regression_tolerances=regression_tolerances,
        champion_path=champion_path(serving_model_dir),
        image_shape=image_shape,
        accept_resegmentation=accept_resegmentation,
    )
    pusher = VersionedPusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"], serving_dir=serving_model_dir)
    bulk_inferrer = tfx.components.BulkInferrer(
        examples=examples,
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        model_spec=tfx.proto.ModelSpec(model_signature_name=[SERVING_SIGNATURE]),
        output_example_spec=tfx.proto.OutputExampleSpec(output_columns_spec=[
            tfx.proto.OutputColumnsSpec(predict_output=tfx.proto.PredictOutput(output_columns=[
                tfx.proto.PredictOutputCol(output_key=key, output_column=key) for key in OUTPUT_KEYS
            ]))
        ]),
    )
    components += [evaluator, pusher, bulk_inferrer]
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args,
    )
