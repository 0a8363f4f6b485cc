"""The local CLI: help for every option, one clear sentence and a non-zero exit on bad input."""

import os
import subprocess
import sys

import pytest

from pipeline import configs, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for action in run.build_parser()._actions:
        for flag in action.option_strings:
            assert flag in text
        assert action.help, f"option {action.option_strings} has no help"


def test_help_states_each_default_once_and_never_none():
    """Help that already names its default gets no second "(default: ...)", and a None default is not printed."""
    from kubeflow import runner, schedule

    for parser in (run.build_parser(), runner.build_parser(), schedule.build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            text = (formatter._get_help_string(action) or "").replace("%(default)s", "X")
            assert "(default: None)" not in text and "(default: False)" not in text, (parser.prog, text)
            assert text.lower().count("default") <= 1, (parser.prog, text)


def test_missing_data_path_fails_with_one_sentence(tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    assert run.main(["--data", str(missing), "--output-root", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: input '{missing}' does not exist."


def test_a_refused_input_leaves_no_empty_folders_and_keeps_what_was_there(tmp_path, capsys):
    src = tmp_path / "words.csv"
    src.write_text("name\nada\nbob\n")
    assert run.main(["--data", str(src), "--output-root", str(tmp_path / "new" / "out")]) == 2
    assert sorted(os.listdir(tmp_path)) == ["words.csv"]
    kept = tmp_path / "old"
    (kept / "data").mkdir(parents=True)
    assert run.main(["--data", str(src), "--output-root", str(kept)]) == 2
    assert (kept / "data").is_dir(), "folders the run did not make stay"
    small = tmp_path / "small.csv"  # refused after staging, which had copied the data
    small.write_text("a,b\n" + "".join(f"{i}.5,{i % 3}\n" for i in range(12)))
    assert run.main(["--data", str(small), "--clusters", "5", "--output-root", str(tmp_path / "late")]) == 2
    assert not (tmp_path / "late").exists()


def test_csv_without_numeric_columns_fails_with_one_sentence(tmp_path, capsys):
    src = tmp_path / "words.csv"
    src.write_text("name,colour\nada,red\nbob,blue\n")
    assert run.main(["--data", str(src), "--output-root", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {src} has no usable feature columns; colour: a different text value in every row (an "
                   "identifier or free text); name: a different text value in every row (an identifier or free text).")


@pytest.mark.parametrize(
    ("header", "flag", "message"),
    [
        ("x,species", "kind", "has no column named 'kind' to use as the label; its columns are 'x', 'species'."),
        ("x,species,label", "species", "has a column named 'label' besides the label column 'species'; rename or "
                                       "remove one of them."),
    ],
    ids=["absent", "two-labels"],
)
def test_a_label_column_that_cannot_be_used_fails_with_one_sentence(tmp_path, capsys, header, flag, message):
    src = tmp_path / "t.csv"
    src.write_text(header + "\n" + "".join(f"{i % 4},a{i % 2}{',0' if 'label' in header else ''}\n" for i in range(9)))
    assert run.main(["--data", str(src), "--label-column", flag, "--output-root", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {src} {message}"


def test_a_label_column_for_input_that_is_not_csv_fails_with_one_sentence(tmp_path, capsys):
    assert run.main(["--label-column", "target", "--output-root", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: a label column ('target') can only be named for CSV or Parquet input; 'digits' is neither.")


def test_missing_schema_fails_before_anything_runs(tmp_path, capsys):
    assert run.main(["--schema", str(tmp_path / "none.pbtxt"), "--output-root", str(tmp_path / "out")]) == 2
    assert "schema file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_module_entry_point_exits_non_zero(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.run", "--data", str(tmp_path / "nothing")],
        capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 2
    assert "does not exist" in result.stderr.splitlines()[-1]


def test_every_model_preset_name_has_a_config():
    from pipeline import configs, trainer

    assert set(trainer.PRESETS) | {configs.TABLE_PRESET} == set(configs.PRESET_NAMES)
    assert set(configs.MODEL_PRESETS.values()) <= set(configs.PRESET_NAMES)


@pytest.mark.parametrize(("value", "expected"), [("4", 4), ("auto", "auto"), ("AUTO", "auto")])
def test_clusters_flag_takes_a_number_or_auto(value, expected):
    args = run.build_parser().parse_args(["--clusters", value])
    assert run.model_settings(args).clusters == expected


@pytest.mark.parametrize("value", ["0", "1", "-2", "many"])
def test_bad_clusters_flag_is_refused_with_a_reason(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.build_parser().parse_args(["--clusters", value])
    assert exit_info.value.code == 2
    assert f"must be an integer of at least 2 or 'auto', got '{value}'" in capsys.readouterr().err


def test_local_and_kubeflow_clis_offer_the_same_model_flags():
    from kubeflow import runner

    def model_flags(parser):
        group = next(g for g in parser._action_groups if g.title == "model")
        return sorted(flag for action in group._group_actions for flag in action.option_strings)

    assert model_flags(run.build_parser()) == model_flags(runner.build_parser())
    assert "--clusters" in model_flags(run.build_parser())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seed", "-1"], "argument --seed: must be between 0 and 4294967295, got -1"),
        (["--seed", "x"], "argument --seed: must be an integer, got 'x'"),
        (["--model-overrides", '{"latent_dims": 2}'],
         "'latent_dims' is not a GMVAEConfig field (did you mean 'latent_dim'?); see model/config.py"),
        (["--thresholds", '{"min_accuracy": 0.9}'], "argument --thresholds: unknown threshold key(s) ['min_accuracy']"),
        (["--thresholds", '{"min_acc": "high"}'], "threshold 'min_acc' must be a finite number, got 'high'"),
        (["--tolerances", '{"accuracy": 0.1}'],
         "argument --tolerances: unknown regression tolerance key(s) ['accuracy']"),
        (["--tolerances", '{"acc": -0.1}'], "regression tolerances must be >= 0: ['acc']"),
    ],
)
def test_bad_options_are_refused_while_the_arguments_are_read(flags, message, capsys, tmp_path):
    """Both CLIs that train stop with exit 2 and one sentence, before any data is staged or compiled."""
    from kubeflow import runner

    for parser in (run.build_parser(), runner.build_parser()):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(flags)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.endswith("--help)\n") and err.count("\n") == 1, "one line, no usage block"


def test_good_options_parse_to_typed_values():
    args = run.build_parser().parse_args(
        ["--seed", "7", "--model-overrides", '{"latent_dim": 5}', "--thresholds", '{"min_acc": 0.5}',
         "--tolerances", "{}"])
    assert (args.seed, args.model_overrides, args.thresholds, args.tolerances) == (
        7, {"latent_dim": 5}, {"min_acc": 0.5}, {})


@pytest.mark.parametrize("rows, flags, message", [
    (1, ["--clusters", "3"], "1 row is too few for 3 clusters: each cluster needs 5 training rows and about a third "
                             "of the rows is kept for evaluation; bring at least 23 rows."),
    (14, ["--clusters", "3"], "14 rows are too few for 3 clusters: each cluster needs 5 training rows and about a "
                              "third of the rows is kept for evaluation; bring at least 23 rows."),
    (29, ["--clusters", "6"], "29 rows are too few for 6 clusters: each cluster needs 5 training rows and about a "
                              "third of the rows is kept for evaluation; ask for at most 3 clusters or bring at least "
                              "45 rows."),
    (9, [], "9 rows are too few for choosing the number of clusters (at least 2)"),
    (12, ["--model-overrides", '{"auto_components": [3, 15]}'], "12 rows are too few for choosing the number of "
                                                                "clusters (at least 3)"),
    (12, ["--clusters", "2", "--model-overrides", '{"n_components": 3}'], "12 rows are too few for 3 clusters"),
])
def test_too_few_rows_for_the_clusters_stop_before_the_pipeline_runs(tmp_path, capsys, rows, flags, message):
    src = tmp_path / "t.csv"
    src.write_text("a,b\n" + "".join(f"{i % 7}.5,{(i * 3) % 5}.25\n" for i in range(rows)))
    out = tmp_path / "out"
    assert run.main(["--data", str(src), "--output-root", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    paths = configs.output_paths(str(out))
    assert not os.path.exists(paths.pipeline_root) and not os.path.exists(paths.metadata)  # no component ran


@pytest.mark.parametrize("settings, asked, fewest", [
    (configs.ModelSettings(preset="table"), "auto", 2),
    (configs.ModelSettings(preset="table", overrides={"n_components": 4}), 4, 4),
    (configs.ModelSettings(preset="digits"), 10, 10),
    (configs.ModelSettings(preset="digits", overrides={"n_components": None}), "auto", 2),
    (configs.ModelSettings(preset="digits", clusters=3, overrides={"n_components": 6}), 6, 6),
    (configs.ModelSettings(preset="table", clusters="auto", overrides={"auto_components": [4, 9]}), "auto", 4),
])
def test_the_clusters_asked_are_those_the_trainer_takes(settings, asked, fewest):
    from pipeline.trainer import model_config_from

    assert (settings.clusters_asked(), settings.fewest_clusters()) == (asked, fewest)
    config = model_config_from(settings.to_custom_config(), 200, 8)
    assert config.n_components == (None if asked == "auto" else asked)


@pytest.mark.parametrize("wrapped", [False, True])
def test_ctrl_c_in_a_run_is_one_sentence_and_exit_130(tmp_path, capsys, monkeypatch, wrapped):
    """A SIGINT while the components run: as KeyboardInterrupt, or as the RuntimeError Beam makes of it inside a
    stage. A fresh output root trusts its cache, so the sentence says the same command goes on."""
    import signal

    from pipeline import local_runner

    def interrupted(pipeline):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            if wrapped:
                raise RuntimeError("KeyboardInterrupt [while running 'ReadFromCsv']") from None
            raise

    monkeypatch.setattr(local_runner, "run", interrupted)
    (tmp_path / "t.csv").write_text("a,b\n" + "\n".join(f"{i % 7},{i % 5}" for i in range(60)) + "\n")
    before = signal.getsignal(signal.SIGINT)
    code = run.main(["--data", str(tmp_path / "t.csv"), "--output-root", str(tmp_path / "out"), "--clusters", "2"])
    assert code == run.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip().startswith(run.INTERRUPTED)
    assert signal.getsignal(signal.SIGINT) is before, "the previous handler is back"
    assert run.main(["--data", str(tmp_path / "t.csv"), "--output-root", str(tmp_path / "out"), "--clusters", "2",
                     "--no-cache"]) == run.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip().startswith(run.INTERRUPTED_WITHOUT_CACHE), "re-running starts over"

    monkeypatch.setattr(local_runner, "run", lambda pipeline: (_ for _ in ()).throw(RuntimeError("a real failure")))
    with pytest.raises(RuntimeError, match="a real failure"):  # no Ctrl-C: not reported as one
        run.main(["--data", str(tmp_path / "t.csv"), "--output-root", str(tmp_path / "out"), "--clusters", "2"])


def test_sigterm_in_a_run_stops_it_as_ctrl_c_does_with_exit_143(tmp_path, capsys, monkeypatch):
    """A scheduler's SIGTERM: the run stops through the same path as Ctrl-C (the local runner's temporary folder is
    removed by its own cleanup), one sentence, exit 143; the default SIGTERM handler is back afterwards."""
    import signal

    from pipeline import local_runner

    reached = []

    def terminated(pipeline):
        try:
            signal.raise_signal(signal.SIGTERM)
        finally:
            reached.append("cleanup")

    monkeypatch.setattr(local_runner, "run", terminated)
    (tmp_path / "t.csv").write_text("a,b\n" + "\n".join(f"{i % 7},{i % 5}" for i in range(60)) + "\n")
    before = signal.getsignal(signal.SIGTERM)
    code = run.main(["--data", str(tmp_path / "t.csv"), "--output-root", str(tmp_path / "out"), "--clusters", "2"])
    assert code == run.EXIT_TERMINATED == 143 and reached == ["cleanup"]
    assert capsys.readouterr().err.strip().startswith(run.INTERRUPTED)
    assert signal.getsignal(signal.SIGTERM) is before


def test_ctrl_c_outside_the_components_says_there_is_nothing_to_resume(tmp_path, capsys, monkeypatch):
    def staging(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "stage", staging)
    assert run.cli(["--output-root", str(tmp_path / "out")]) == run.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == run.INTERRUPTED_OUTSIDE
