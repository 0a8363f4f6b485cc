"""The pipeline's Beam steps (CsvExampleGen, StatisticsGen) on Beam's PortableRunner: the same outputs as on the
DirectRunner (slow: marked e2e).

The pipeline is ``create_pipeline`` (the one ``make run`` executes), run by LocalDagRunner as a partial run up to
StatisticsGen, with ``beam_pipeline_args`` naming the PortableRunner, the Python job service and an EXTERNAL worker
pool; the steps after it (Transform, training, evaluation) are left out to keep the test short.
"""

import glob
import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.orchestration.pipeline import RunOptions

from components.clustering_evaluator.bless_rules import DEFAULT_THRESHOLDS, DEFAULT_TOLERANCES
from pipeline import configs, local_runner
from pipeline.data import DEFAULT_SOURCE, feature_plan, stage
from pipeline.pipeline import create_pipeline

pytestmark = pytest.mark.e2e
BEAM_STEPS = ("CsvExampleGen", "StatisticsGen")


def _run_beam_steps(root: str, data_dir: str, columns, beam_args: list[str]) -> dict[str, str]:
    """Run the pipeline's Beam steps into ``root``; {component: output uri}."""
    paths = configs.output_paths(root)
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME, pipeline_root=paths.pipeline_root, data_root=data_dir,
        data_format="csv", preprocessing_fn=configs.PREPROCESSING_FN, run_fn=configs.RUN_FN,
        feature_plan=feature_plan(columns, configs.GLOBAL_MINMAX), serving_model_dir=paths.serving,
        model_settings=configs.ModelSettings(), thresholds=DEFAULT_THRESHOLDS,
        regression_tolerances=DEFAULT_TOLERANCES,
        metadata_connection_config=local_runner.sqlite_config(paths.metadata), beam_pipeline_args=beam_args)
    local_runner.run(pipeline, run_options=RunOptions(to_nodes=[BEAM_STEPS[-1]]))
    outputs = local_runner.latest_run_outputs(paths.metadata, configs.PIPELINE_NAME)
    assert {(o.component, o.state) for o in outputs} == {(c, "COMPLETE") for c in BEAM_STEPS}
    return {o.component: o.uri for o in outputs}


def _examples(uri: str) -> dict[str, list[bytes]]:
    """Split name -> its tf.Examples serialized deterministically (feature map order varies between processes),
    sorted (shard layout and record order are the runner's business)."""
    splits = {}
    for split in sorted(os.listdir(uri)):
        files = sorted(glob.glob(os.path.join(uri, split, "*.gz")))
        splits[split] = sorted(tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
                               for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))
    return splits


def _statistics(uri: str) -> dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    stats = {}
    for split in sorted(os.listdir(uri)):
        with open(os.path.join(uri, split, "FeatureStats.pb"), "rb") as f:
            stats[split] = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
    return stats


def _exact_statistics(stats: statistics_pb2.DatasetFeatureStatisticsList) -> dict[str, dict[str, float]]:
    """Per feature the statistics that do not depend on how a runner bundles the data: counts, min, max, mean and
    standard deviation. Histograms are left out: TFDV builds them from approximate quantile sketches whose merge order
    follows the bundles, so two correct runs can differ in a bucket boundary."""
    features = {}
    for feature in stats.datasets[0].features:
        num = feature.num_stats
        common = num.common_stats if feature.HasField("num_stats") else feature.string_stats.common_stats
        features[".".join(feature.path.step)] = {
            "non_missing": common.num_non_missing, "missing": common.num_missing,
            "min": num.min, "max": num.max, "mean": num.mean, "std": num.std_dev,
            "unique": feature.string_stats.unique}
    return features


def test_example_gen_and_statistics_gen_on_the_portable_runner_match_the_direct_runner(
        tmp_path, portable_beam_args) -> None:
    staged = stage(DEFAULT_SOURCE, str(tmp_path / "data"))
    direct = _run_beam_steps(str(tmp_path / "direct"), staged.input_dir, staged.columns,
                             list(configs.DEFAULT_BEAM_ARGS))
    portable = _run_beam_steps(str(tmp_path / "portable"), staged.input_dir, staged.columns, portable_beam_args)

    direct_examples, portable_examples = _examples(direct["CsvExampleGen"]), _examples(portable["CsvExampleGen"])
    assert sum(len(v) for v in direct_examples.values()) == staged.num_rows
    assert portable_examples == direct_examples
    direct_stats, portable_stats = _statistics(direct["StatisticsGen"]), _statistics(portable["StatisticsGen"])
    assert set(direct_stats) == set(direct_examples)
    for split, stats in direct_stats.items():
        assert stats.datasets[0].num_examples == len(direct_examples[split])
        assert portable_stats[split].datasets[0].num_examples == stats.datasets[0].num_examples, split
        direct_features, portable_features = _exact_statistics(stats), _exact_statistics(portable_stats[split])
        assert portable_features.keys() == direct_features.keys(), split
        for name, values in direct_features.items():
            assert portable_features[name] == pytest.approx(values, rel=1e-9, abs=1e-12), (split, name)
