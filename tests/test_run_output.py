"""What `python -m pipeline.run` prints: the closing summary, the quiet console, the champion-record exit code."""

import io
import json
import logging
import os

import pytest
from absl import logging as absl_logging

from components.clustering_evaluator.constants import CANDIDATE_METRICS_FILE
from pipeline import local_runner, run, run_output
from pipeline.local_runner import RunOutput

METRICS = {"acc": 0.8631, "nmi": 0.8012, "ari": 0.7431, "silhouette": 0.3081, "mean_elbo": -26.853,
           "min_share": 0.0733, "max_share": 0.1244, "empty": 0, "n_clusters": 10, "n_examples": 360}


def _dir(path, files=()):
    os.makedirs(path, exist_ok=True)
    for name, text in dict(files).items():
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    return str(path)


def _outputs(tmp_path, blessed: bool, metrics=METRICS, comparison=None):
    summary = ("blessed: all 3 thresholds met; no baseline (first run)" if blessed
               else "not blessed: nmi 0.8012 < 0.999")
    evaluated = {"candidate": {"metrics": metrics}, "decision": {"blessed": blessed, "summary": summary}}
    if comparison is not None:
        evaluated["comparison"] = comparison
    evaluation = _dir(tmp_path / "ClusteringEvaluator" / "evaluation" / "9", {
        "metrics.json": json.dumps(evaluated),
        "report.md": "# report\n"})
    blessing = _dir(tmp_path / "ClusteringEvaluator" / "blessing" / "9", {
        "BLESSED" if blessed else "NOT_BLESSED": "", CANDIDATE_METRICS_FILE: json.dumps(metrics)})
    model_run = _dir(tmp_path / "Trainer" / "model_run" / "8")
    pushed = _dir(tmp_path / "Pusher" / "pushed_model" / "11", {"saved_model.pb": "x"} if blessed else {})
    push_properties = ({"pushed": 1, "pushed_destination": "/srv/serving/1", "pushed_version": "1"} if blessed
                       else {"pushed": 0})
    return [
        RunOutput("Trainer", "Model", "COMPLETE", str(tmp_path / "Trainer" / "model" / "8")),
        RunOutput("Trainer", "ModelRun", "COMPLETE", model_run),
        RunOutput("ClusteringEvaluator", "ModelEvaluation", "COMPLETE", evaluation),
        RunOutput("ClusteringEvaluator", "ModelBlessing", "COMPLETE", blessing,
                  {"blessing_message": summary, "blessed": int(blessed)}),
        RunOutput("Pusher", "PushedModel", "COMPLETE", pushed, push_properties),
    ], evaluation, model_run


def test_summary_of_a_blessed_run_names_metrics_version_report_tensorboard_and_metadata(tmp_path):
    outputs, evaluation, model_run = _outputs(tmp_path, blessed=True)
    lines = run_output.summary_lines(outputs, "/out/metadata.sqlite", "/out/logs/run-1.log")
    text = "\n".join(lines)
    assert "model:" in lines[0] and "blessed: all 3 thresholds met; no baseline (first run)" in lines[0]
    assert "ACC 0.863  NMI 0.801  ARI 0.743  silhouette 0.308  mean ELBO -26.85" in text
    assert "K=10, smallest 7.3%, largest 12.4%" in text
    assert "pushed:      version 1: /srv/serving/1" in text
    assert f"report:      {os.path.join(evaluation, 'report.md')}" in text
    assert f"tensorboard --logdir {os.path.join(model_run, 'logs')}" in text
    assert "ML Metadata: /out/metadata.sqlite" in text
    assert "full log:    /out/logs/run-1.log" in text


@pytest.mark.parametrize("comparison, hint", [
    ({"k": 10, "k_reason": "K=10 is the best of K=2..15 ...", "k_scores": {"2": 0.42, "10": 0.45}}, True),
    ({"k": 10, "k_reason": "K=10 was given", "k_scores": {}}, False),
    ({"note": "no comparison: the training summary could not be used"}, False),
])
def test_the_clusters_line_points_to_clusters_k_only_when_the_data_chose_k(tmp_path, comparison, hint):
    outputs, _, _ = _outputs(tmp_path, blessed=True, comparison=comparison)
    text = "\n".join(run_output.summary_lines(outputs, "/out/metadata.sqlite"))
    chosen = ("K=10 (chosen by the data, which often picks fewer than the true groups: --clusters K sets it), "
              "smallest 7.3%")
    assert (chosen in text) is hint
    assert ("K=10, smallest 7.3%, largest 12.4%" in text) is not hint


def test_summary_of_a_run_with_a_champion_says_how_many_examples_keep_their_cluster_id(tmp_path):
    outputs, evaluation, _ = _outputs(tmp_path, blessed=True)
    diagnosis = "95.5% of eval examples keep their cluster ID; no input feature drifted above 0.1, largest 0.000"
    with open(os.path.join(evaluation, "metrics.json"), "w") as f:
        json.dump({"candidate": {"metrics": METRICS}, "versions": {"diagnosis": diagnosis, "best_agreement": 0.955}},
                  f)
    text = "\n".join(run_output.summary_lines(outputs, "/out/metadata.sqlite"))
    assert f"cluster IDs: {diagnosis} (vs the champion; best relabelling 95.5%)" in text


def test_summary_of_a_rejected_run_says_why_and_that_nothing_was_pushed(tmp_path):
    unlabelled = {k: v for k, v in METRICS.items() if k not in ("acc", "nmi", "ari")} | {"empty": 2}
    outputs, _, _ = _outputs(tmp_path, blessed=False, metrics=unlabelled)
    text = "\n".join(run_output.summary_lines(outputs, "/out/metadata.sqlite"))
    assert "not blessed: nmi 0.8012 < 0.999" in text
    assert "nothing pushed (not blessed)" in text
    assert "  if intended: when a bound does not fit this data (a real small segment" in text
    assert not run_output.is_blessed(outputs) and run_output.is_blessed(_outputs(tmp_path / "b", blessed=True)[0])
    assert not run_output.is_blessed([o for o in outputs if o.kind != "ModelBlessing"]), "not evaluated"
    assert "ACC" not in text and "silhouette 0.308" in text and "2 empty" in text
    assert "full log" not in text


def test_a_blessed_model_the_pusher_kept_out_says_why(tmp_path):
    from components.versioned_pusher.constants import NOT_PUSHED_REASON

    outputs, _, _ = _outputs(tmp_path, blessed=True)
    reason = ("this model has the weights of version 2, which was rolled back (its directory is gone), so it is not "
              "pushed again")
    outputs[-1] = RunOutput("Pusher", "PushedModel", "COMPLETE", outputs[-1].uri,
                            {"pushed": 0, NOT_PUSHED_REASON: reason})
    text = "\n".join(run_output.summary_lines(outputs, "/out/metadata.sqlite"))
    assert f"pushed:      nothing pushed ({reason})" in text and "(not blessed)" not in text


def test_summary_falls_back_to_the_evaluation_files_and_says_when_nothing_was_evaluated(tmp_path):
    outputs, _, _ = _outputs(tmp_path, blessed=False)
    without_properties = [RunOutput(o.component, o.kind, o.state, o.uri) for o in outputs]
    text = "\n".join(run_output.summary_lines(without_properties, "m.sqlite"))
    assert "not blessed: nmi 0.8012 < 0.999" in text and "NMI 0.801" in text and "nothing pushed" in text
    assert run_output.summary_lines([], "m.sqlite")[0].endswith("not evaluated")


def _record(msg, args=(), level=logging.INFO, pathname=None, name="absl"):
    pathname = pathname or "/usr/lib/python3.10/site-packages/tfx/orchestration/local/local_dag_runner.py"
    return logging.LogRecord(name, level, pathname, 1, msg, args, None)


def test_library_noise_goes_to_the_log_file_only_and_progress_reaches_the_console(tmp_path):
    console, log_path = io.StringIO(), str(tmp_path / "logs" / "run.log")
    with run_output.console_output(log_path, stream=console) as handler:
        handler.total = 2
        absl_logging.warning("absl noise: custom_executor_spec is deprecated")
        logging.getLogger("tfx").warning("tfx noise")
        logging.getLogger("apache_beam").info("beam noise")
        root = logging.getLogger()
        root.handle(_record("Component %s is running.", ("Trainer",)))
        root.handle(_record("A cached execution %d is used.", (7,)))
        root.handle(_record("Component %s is finished.", ("Trainer",)))
        root.handle(_record("our own warning", level=logging.WARNING,
                            pathname=os.path.join(run_output.PROJECT_ROOT, "pipeline", "trainer.py")))
        assert os.environ[run_output.TRAINER_VERBOSE_ENV] == "1"
    shown = console.getvalue()
    assert "noise" not in shown
    assert "[1/2] Trainer ...\n" in shown and "[1/2] Trainer cached in" in shown
    assert "warning: our own warning" in shown
    with open(log_path) as f:
        logged = f.read()
    for text in ("absl noise: custom_executor_spec is deprecated", "tfx noise", "beam noise", "our own warning",
                 "Component Trainer is running."):
        assert text in logged
    assert run_output.TRAINER_VERBOSE_ENV not in os.environ
    assert all(not isinstance(h, run_output.ConsoleHandler) for h in logging.getLogger().handlers)


def test_verbose_keeps_the_console_as_it_was_and_trains_with_a_line_per_epoch(tmp_path):
    console = io.StringIO()
    before = list(logging.getLogger().handlers)
    with run_output.console_output(str(tmp_path / "run.log"), verbose=True, stream=console) as handler:
        assert handler is None
        assert os.environ[run_output.TRAINER_VERBOSE_ENV] == "2"
        assert all(h in logging.getLogger().handlers for h in before)
    assert logging.getLogger().handlers == before


def test_a_progress_bar_off_a_terminal_becomes_one_line_per_stage():
    out = io.StringIO()
    stream = run_output.CarriageReturnCollapser(out)
    stream.write("\rpretrain:   0%|   | 0/20")
    stream.write("\rpretrain:  50%|#  | 10/20")
    stream.write("\rpretrain: 100%|###| 20/20\n\rfine-tune: 100%|###| 5/5")
    stream.close_pending()
    assert out.getvalue() == "pretrain: 100%|###| 20/20\nfine-tune: 100%|###| 5/5\n"


@pytest.mark.parametrize("broken", ["record", "model"])
def test_an_unusable_champion_record_stops_the_run_with_one_sentence_and_exit_5(tmp_path, monkeypatch, capsys, broken):
    from serving.champion import ChampionModelError, ChampionRecordError

    record = str(tmp_path / "out" / "serving" / "champion.json")
    error = ChampionRecordError(record, "is empty") if broken == "record" else ChampionModelError("the model is cut.")

    def corrupt(pipeline):
        raise error

    monkeypatch.setattr(local_runner, "run", corrupt)
    assert run.main(["--output-root", str(tmp_path / "out")]) == run.EXIT_CHAMPION_RECORD == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"error: {error}"
    if broken == "record":
        assert err[0] == f"error: champion record {record} is empty; fix or delete it (deleted, the newest version " \
                         "in the serving directory stands for the champion)."
    assert err[1].startswith("(full log: ") and str(tmp_path / "out" / "logs") in err[1]


def test_help_lists_every_exit_code(capsys):
    with pytest.raises(SystemExit):
        run.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for code in ("2 unusable", "3 the data", "4 training diverged", "5 the champion record"):
        assert code in text
    assert "--verbose" in text


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_bars_are_drawn_as_they_are(tmp_path):
    import sys

    before = sys.stderr
    with run_output.console_output(str(tmp_path / "run.log"), stream=_Terminal()):
        assert sys.stderr is before
    assert sys.stderr is before


def test_the_trainer_reads_the_progress_setting_the_console_gives(tmp_path, monkeypatch):
    from pipeline import trainer

    monkeypatch.delenv(run_output.TRAINER_VERBOSE_ENV, raising=False)
    for verbose, expected in ((False, 1), (True, 2)):
        with run_output.console_output(str(tmp_path / "run.log"), verbose=verbose):
            assert trainer.progress_verbosity() == expected
