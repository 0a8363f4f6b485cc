"""The local runner leaves nothing in the system's temp folder: TFX's Beam executors build a ~50 MB package there at
every execution and never delete it, so `local_runner.run` gives the run its own temp folder and removes it."""

import os
import tempfile

from tfx.orchestration.pipeline import RunOptions

from components.clustering_evaluator.bless_rules import DEFAULT_THRESHOLDS, DEFAULT_TOLERANCES
from pipeline import configs, local_runner
from pipeline.data import feature_plan, stage
from pipeline.pipeline import create_pipeline


def test_scratch_is_removed_and_the_temp_settings_restored(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", "/somewhere")
    with local_runner.scratch() as path:
        assert tempfile.mkdtemp().startswith(path) and os.environ["TMPDIR"] == path
    assert not os.path.exists(path)
    assert (tempfile.tempdir, os.environ["TMPDIR"]) == (str(tmp_path), "/somewhere")
    assert os.listdir(tmp_path) == []


def test_a_beam_step_leaves_nothing_in_the_system_temp_folder(tmp_path, monkeypatch) -> None:
    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    (tmp_path / "t.csv").write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    staged = stage(str(tmp_path / "t.csv"), str(tmp_path / "out" / "data"))
    paths = configs.output_paths(str(tmp_path / "out"))
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME, pipeline_root=paths.pipeline_root, data_root=staged.input_dir,
        data_format="csv", preprocessing_fn=configs.PREPROCESSING_FN, run_fn=configs.RUN_FN,
        feature_plan=feature_plan(staged.columns, configs.ZSCORE), serving_model_dir=paths.serving,
        model_settings=configs.ModelSettings(), thresholds=DEFAULT_THRESHOLDS,
        regression_tolerances=DEFAULT_TOLERANCES, metadata_connection_config=local_runner.sqlite_config(paths.metadata),
        beam_pipeline_args=list(configs.DEFAULT_BEAM_ARGS))
    local_runner.run(pipeline, run_options=RunOptions(to_nodes=["CsvExampleGen"]))
    outputs = local_runner.latest_run_outputs(paths.metadata, configs.PIPELINE_NAME)
    assert [(o.component, o.state) for o in outputs] == [("CsvExampleGen", "COMPLETE")]
    assert os.listdir(system_temp) == []
