"""The one pipeline definition every runner uses: ingest, validate, transform (then train, evaluate, push)."""

from __future__ import annotations

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from pipeline.data import CSV


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    data_format: str,
    preprocessing_fn: str,
    scaling: str,
    schema_path: str | None = None,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    beam_pipeline_args: list[str] | None = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """Assemble the pipeline; every setting is an argument so runners only choose where it runs."""
    if data_format == CSV:
        example_gen = tfx.components.CsvExampleGen(input_base=data_root)
    else:
        example_gen = tfx.components.ImportExampleGen(input_base=data_root)

    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if schema_path:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                              infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=preprocessing_fn,
        custom_config={"scaling": scaling},
    )

    components = [example_gen, statistics_gen, schema_gen, example_validator, transform]
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args,
    )
