"""Kubeflow side: the compiled spec, the multi-worker Trainer option, the schedule dry run, image pins, secrets."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from types import SimpleNamespace

import pytest
import yaml

from kubeflow import config, runner, schedule, secrets_scan

ROOT = os.path.join(os.path.dirname(__file__), "..")
IMAGE = "registry.example.com/gmvae/gmvae-pipeline:test"
BEAM_ARGS = ["--beam-arg=--runner=DirectRunner", "--beam-arg=--direct_num_workers=1"]


def read(*parts: str) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read()


def compile_args(output: str, *extra: str) -> list[str]:
    return ["--output", output, "--image", IMAGE, "--pipeline-root", "gs://test-bucket/root",
            "--data-root", "gs://test-bucket/data", "--serving-dir", "gs://test-bucket/serving/gmvae",
            *BEAM_ARGS, *extra]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, argparse.Namespace]:
    path = str(tmp_path_factory.mktemp("kfp") / "pipeline.json")
    argv = compile_args(path)
    assert runner.main(argv) == 0
    with open(path) as f:
        return json.load(f), runner.build_parser().parse_args(argv)


def test_compiled_spec_has_every_component_in_the_configured_image(compiled: tuple[dict, argparse.Namespace]) -> None:
    from pipeline.pipeline import create_pipeline

    job, args = compiled
    expected = {c.id for c in create_pipeline(**runner.pipeline_kwargs(args)).components}
    spec = job["pipelineSpec"]
    assert set(spec["root"]["dag"]["tasks"]) == expected
    executors = spec["deploymentSpec"]["executors"]
    assert {name.removesuffix("_executor") for name in executors} == expected
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://test-bucket/root"
    assert "--runner=DirectRunner" in json.dumps(executors["StatisticsGen_executor"])


def _task_config(job: dict, task: str) -> dict:
    parameters = job["pipelineSpec"]["root"]["dag"]["tasks"][task]["inputs"]["parameters"]
    return json.loads(parameters["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])


def test_columns_from_a_table_compile_its_feature_plan_and_the_table_preset(tmp_path, capsys) -> None:
    table = tmp_path / "sample.csv"
    table.write_text("id,height,region,score\n1,1.5,north,3\n2,,south,4\n3,2.5,north,\n4,3.0,,5\n5,1.0,east,2\n")
    path = str(tmp_path / "p.json")
    assert runner.main(compile_args(path, "--columns-from", str(table))) == 0
    assert "region: categorical, 3 categories (one-hot), 1 missing" in capsys.readouterr().out
    with open(path) as f:
        job = json.load(f)
    assert _task_config(job, "Transform")["features"] == {
        "scaling": "zscore", "columns": ["height", "region", "score"], "categorical": {"region": 3},
        "missing": ["height", "region", "score"]}
    assert _task_config(job, "Trainer")["model"]["preset"] == "table"
    # the Trainer reads the same plan: which model inputs are missing-value indicators (GMVAEConfig.missing_groups)
    assert _task_config(job, "Trainer")["features"] == _task_config(job, "Transform")["features"]


def test_columns_from_a_missing_file_is_one_sentence(tmp_path, capsys) -> None:
    assert runner.main(compile_args(str(tmp_path / "p.json"), "--columns-from", str(tmp_path / "no.csv"))) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'no.csv'} does not exist."


def test_yaml_output_is_the_bare_ir_the_kfp_client_reads(tmp_path) -> None:
    path = str(tmp_path / "pipeline.yaml")
    assert runner.main(compile_args(path)) == 0
    ir, root = schedule.load_spec(path)
    assert ir["pipelineInfo"]["name"] == "gmvae-clustering" and root is None


@pytest.mark.parametrize(("extra", "message"), [
    (["--output", "spec.txt"], "must end in .json"),
    (["--train-workers", "0"], "at least 1"),
    (["--train-workers", "3"], "needs --gcp-project"),
    (["--pipeline-root", "relative/root"], "--pipeline-root 'relative/root' must be"),
    (["--pipeline-name", "Bad/Name"], "(a Kubeflow pipeline name), got 'Bad/Name'"),
    (["--pipeline-name", "a" * 64], "at most 63 characters"),
    (["--image-shape", "0x0"], "at least 1 pixel, got '0x0'"),
])
def test_bad_arguments_fail_with_one_sentence(extra: list[str], message: str, capsys, tmp_path) -> None:
    try:
        code = runner.main(compile_args(str(tmp_path / "p.json")) + extra)
    except SystemExit as stop:  # refused while the arguments are read
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0 and err.endswith((".", ")"))


@pytest.mark.parametrize("parser", [runner.build_parser(), schedule.build_parser()])
def test_every_cli_option_is_explained(parser: argparse.ArgumentParser) -> None:
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert options and all(a.help and len(a.help) > 15 for a in options)


def test_vertex_training_config_asks_for_one_chief_and_n_minus_one_workers() -> None:
    from tfx.v1.extensions import google_cloud_ai_platform as gcai

    cfg = runner.vertex_training_config(4, IMAGE, "proj", "europe-west4", "n1-standard-4")
    assert cfg[gcai.ENABLE_VERTEX_KEY] is True and cfg[gcai.VERTEX_REGION_KEY] == "europe-west4"
    args = cfg[gcai.TRAINING_ARGS_KEY]
    pools = args["job_spec"]["worker_pool_specs"]
    assert args["project"] == "proj"
    assert [p["replica_count"] for p in pools] == [1, 3]
    assert {p["container_spec"]["image_uri"] for p in pools} == {IMAGE}


def test_multi_worker_trainer_compiles_on_kubeflow_v2(tmp_path) -> None:
    """--train-workers swaps in the Vertex AI Trainer with chief + worker pools in the real pipeline."""
    out = str(tmp_path / "mw.json")
    assert runner.main(compile_args(out, "--train-workers", "3", "--gcp-project", "proj")) == 0
    text = read(out)
    assert "google_cloud_ai_platform.trainer.executor.GenericExecutor" in text
    assert '\\"replica_count\\": 2' in text and "worker_pool_specs" in text


def test_tfjob_trainer_compiles_with_a_chief_and_worker_replicas(tmp_path) -> None:
    """--distribution tfjob: the spec's Trainer runs kubeflow.tfjob.Executor and carries the TFJob's replica spec."""
    from kubeflow import tfjob

    out = str(tmp_path / "tfjob.json")
    assert runner.main(compile_args(out, "--train-workers", "3", "--distribution", "tfjob",
                                    "--tfjob-namespace", "ml")) == 0
    with open(out) as f:
        job = json.load(f)
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    assert "kubeflow.tfjob.Executor" in json.dumps(executors["Trainer_executor"])
    settings = tfjob.TFJobSettings.from_custom_config(_task_config(job, "Trainer"))
    assert (settings.workers, settings.image, settings.namespace) == (3, IMAGE, "ml")
    manifest = tfjob.tfjob_manifest("run-1", "ml", settings, ["python", "-m", "x"])
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v1", "TFJob")
    specs = manifest["spec"]["tfReplicaSpecs"]
    assert {role: spec["replicas"] for role, spec in specs.items()} == {"Chief": 1, "Worker": 2}
    for spec in specs.values():
        (container,) = spec["template"]["spec"]["containers"]
        assert (container["name"], container["image"]) == ("tensorflow", IMAGE)
        assert container["resources"]["limits"] == {"cpu": config.TFJOB_CPU, "memory": config.TFJOB_MEMORY}
    assert manifest["spec"]["runPolicy"]["activeDeadlineSeconds"] == settings.timeout_seconds


def test_tfjob_replicas_run_the_generic_trainer_executor_on_the_step_artifacts() -> None:
    from tfx.scripts import run_executor
    from tfx.types import artifact_utils, standard_artifacts

    from kubeflow import tfjob

    examples, model = standard_artifacts.Examples(), standard_artifacts.Model()
    examples.uri, model.uri = "gs://b/examples/1", "gs://b/model/2"
    command = tfjob.replica_command({"examples": [examples]}, {"model": [model]}, {"custom_config": "{}"})
    assert command[:3] == ["python", "-m", "tfx.scripts.run_executor"]
    parsed, rest = run_executor.parse_flags(command[3:])
    assert rest == [] and parsed.executor_class_path == tfjob.TRAINER_EXECUTOR
    assert artifact_utils.parse_artifact_dict(parsed.outputs)["model"][0].uri == "gs://b/model/2"
    assert artifact_utils.parse_artifact_dict(parsed.inputs)["examples"][0].uri == "gs://b/examples/1"


class FakeTFJobs:
    """Answers get_namespaced_custom_object with the given TFJob condition types, one per call."""

    def __init__(self, *states: str) -> None:
        self.states = list(states)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        assert (group, version, plural) == ("kubeflow.org", "v1", "tfjobs")
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"status": {"conditions": [{"type": "Created", "status": "True"},
                                          {"type": state, "status": "True"}]}}


def test_tfjob_wait_returns_on_success_and_fails_in_one_sentence() -> None:
    from kubeflow import tfjob

    tfjob.wait_for(FakeTFJobs("Running", "Running", "Succeeded"), "j", "ml", timeout_seconds=5, poll_seconds=0)
    with pytest.raises(tfjob.TFJobError, match=r"^TFJob ml/j failed; see `kubectl describe tfjob -n ml j`\.$"):
        tfjob.wait_for(FakeTFJobs("Running", "Failed"), "j", "ml", timeout_seconds=5, poll_seconds=0)
    with pytest.raises(tfjob.TFJobError, match="did not finish within 0 s"):
        tfjob.wait_for(FakeTFJobs("Running"), "j", "ml", timeout_seconds=0, poll_seconds=0)
    assert tfjob.job_name("GMVAE clustering!").startswith("gmvae-clustering-train-")


@pytest.fixture
def spec_file(compiled: tuple[dict, argparse.Namespace], tmp_path) -> str:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(compiled[0]))
    return str(path)


def test_schedule_dry_run_prints_the_submission_and_contacts_nothing(spec_file: str, capsys, monkeypatch) -> None:
    import kfp

    monkeypatch.setattr(kfp, "Client", lambda *a, **k: pytest.fail("dry run must not create a kfp client"))
    assert schedule.main(["--spec", spec_file, "--dry-run", "--cron", "0 15 3 * * *", "--host", "http://kfp:80"]) == 0
    plan = json.loads(capsys.readouterr().out)
    run = plan["recurring_run"]
    assert run["cron_expression"] == "0 15 3 * * *"
    assert run["max_concurrency"] == 1 and run["no_catchup"] is True and run["enabled"] is True
    assert run["pipeline_root"] == "gs://test-bucket/root"
    assert plan["experiment"] == config.EXPERIMENT and plan["pipeline"]["name"] == "gmvae-clustering"
    assert re.fullmatch(r"gmvae-clustering-[0-9a-f]{12}", plan["pipeline"]["version"])


def test_schedule_warns_when_the_spec_reuses_cached_results(compiled: tuple[dict, argparse.Namespace], tmp_path,
                                                             capsys) -> None:
    """The README's nightly advice (--no-cache) is checked where the schedule is made, not left to memory."""
    job = compiled[0]
    cached = tmp_path / "cached.json"
    cached.write_text(json.dumps(job))
    assert schedule.main(["--spec", str(cached), "--dry-run"]) == 0
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {len(tasks)} steps of {cached} reuse cached results (compiled without --no-cache)")
    assert err.rstrip().endswith("compile nightly specs with 'python -m kubeflow.runner --no-cache'.")
    fresh = tmp_path / "fresh.json"  # what --no-cache compiles: no caching options
    fresh.write_text(json.dumps({**job, "pipelineSpec": {**job["pipelineSpec"], "root": {"dag": {"tasks": {
        name: {k: v for k, v in task.items() if k != "cachingOptions"} for name, task in tasks.items()}}}}}))
    assert schedule.main(["--spec", str(fresh), "--dry-run"]) == 0
    assert capsys.readouterr().err == ""


def test_schedule_rejects_unix_five_field_cron(spec_file: str, capsys) -> None:
    assert schedule.main(["--spec", spec_file, "--dry-run", "--cron", "0 2 * * *"]) == 2
    assert "KFP needs 6 with seconds first, e.g. '0 0 2 * * *'." in capsys.readouterr().err


class FakeClient:
    """Records kfp.Client calls; one recurring run named ``existing`` is already there."""

    def __init__(self, existing: str | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.existing = existing

    def _record(self, call: str, **kwargs) -> None:
        self.calls.append((call, kwargs))

    def create_experiment(self, name, namespace=None):
        self._record("create_experiment", name=name)
        return SimpleNamespace(experiment_id="exp-1")

    def list_recurring_runs(self, **kwargs):
        runs = [SimpleNamespace(display_name=self.existing, recurring_run_id="old")] if self.existing else []
        return SimpleNamespace(recurring_runs=runs, next_page_token="")

    def delete_recurring_run(self, recurring_run_id):
        self._record("delete_recurring_run", recurring_run_id=recurring_run_id)

    def get_pipeline_id(self, name):
        return None

    def upload_pipeline(self, package, pipeline_name=None, namespace=None):
        with open(package) as f:
            self._record("upload_pipeline", package=package, ir=yaml.safe_load(f), name=pipeline_name)
        return SimpleNamespace(pipeline_id="pl-1")

    def upload_pipeline_version(self, package, pipeline_version_name, pipeline_id):
        self._record("upload_pipeline_version", name=pipeline_version_name)
        return SimpleNamespace(pipeline_version_id="v-1")

    def create_recurring_run(self, **kwargs):
        self._record("create_recurring_run", **kwargs)
        return SimpleNamespace(recurring_run_id="rr-1")


def test_submit_uploads_the_ir_and_creates_a_single_concurrency_schedule(spec_file: str) -> None:
    plan = schedule.build_plan(schedule.build_parser().parse_args(["--spec", spec_file]))
    client = FakeClient()
    assert schedule.submit(plan, client) == "rr-1"
    calls = dict(client.calls)
    assert calls["upload_pipeline"]["package"].endswith(".yaml")
    assert calls["upload_pipeline"]["ir"]["pipelineInfo"]["name"] == "gmvae-clustering"
    run = calls["create_recurring_run"]
    assert run["experiment_id"] == "exp-1" and run["pipeline_id"] == "pl-1" and run["version_id"] == "v-1"
    assert run["cron_expression"] == config.SCHEDULE_CRON and run["max_concurrency"] == 1 and run["no_catchup"]


def test_submit_refuses_to_duplicate_a_schedule_unless_replacing(spec_file: str) -> None:
    args = schedule.build_parser().parse_args(["--spec", spec_file])
    with pytest.raises(schedule.ScheduleError, match="already exists"):
        schedule.submit(schedule.build_plan(args), FakeClient(existing=config.RECURRING_RUN_NAME))
    args.replace = True
    client = FakeClient(existing=config.RECURRING_RUN_NAME)
    schedule.submit(schedule.build_plan(args), client)
    assert [name for name, _ in client.calls][1:3] == ["delete_recurring_run", "upload_pipeline"]


def test_image_pins_match_the_lock_and_dockerfile_keeps_the_stack() -> None:
    lock = dict(line.split("==") for line in read(ROOT, "requirements.lock").splitlines()
                if "==" in line and not line.startswith("#"))
    lock = {re.sub(r"[-_.]+", "-", k).lower(): v.strip() for k, v in lock.items()}
    pins = [line.strip().split("==") for line in read(ROOT, "kubeflow", "requirements-image.txt").splitlines()
            if line.strip() and not line.startswith("#")]
    assert pins and all(lock[name] == version for name, version in pins)
    dockerfile = read(ROOT, "kubeflow", "Dockerfile")
    assert re.search(r"^FROM gcr\.io/tfx-oss-public/tfx:1\.16\.0$", dockerfile, re.M)
    assert re.search(r"^ENV TF_USE_LEGACY_KERAS=1", dockerfile, re.M)
    assert all("--no-deps" in line for line in dockerfile.splitlines() if "pip install" in line)
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0"
    for path in ("model/", "components/", "pipeline/", "serving/", "batch_scoring/", "kubeflow/", "pyproject.toml",
                 "requirements.lock"):
        assert path in dockerfile


def test_the_build_context_holds_everything_the_dockerfile_copies() -> None:
    kept = [line[1:] for line in read(ROOT, ".dockerignore").splitlines() if line.startswith("!")]
    sources = [source.rstrip("/") for line in read(ROOT, "kubeflow", "Dockerfile").splitlines()
               if line.startswith("COPY ") and "--from" not in line for source in line.split()[1:-1]]
    assert sources
    for source in sources:  # a file or directory, or one inside a kept directory
        assert any(source == k or k == f"{source}/**" or (k.endswith("/**") and source.startswith(k[:-2]))
                   for k in kept), f".dockerignore leaves {source} out of the build context"


# Planted value -> the detect-secrets secret type that must be reported (Google ones: kubeflow/secrets_plugins.py).
PLANTED = {
    "Private Key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow==\n-----END RSA PRIVATE KEY-----",
    "AWS Access Key": "AKIAIOSFODNN7EXAMPLE",
    "Google OAuth Access Token": "ya29.a0AfH6SMBx3kq9TZ1lPZQ8example_token_value",
    "GCP Service Account Key": '{"type": "service_account", "private_key_id": "abc"}',
    "GitHub Token": "ghp_" + "a1B2c3D4e5" * 4,
    "JSON Web Token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "Basic Auth Credentials": "https://admin:s3cretPass@kfp.example.com/pipeline",
    "Secret Keyword": "db_password: Hunter2Hunter2",
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_secret_scanner_catches_a_planted_secret(kind: str, compiled: tuple[dict, argparse.Namespace],
                                                 tmp_path) -> None:
    job = json.loads(json.dumps(compiled[0]))
    job["labels"]["planted"] = PLANTED[kind]
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(job, indent=2))
    assert kind in {f.kind for f in secrets_scan.scan_paths([str(path)])}


def test_compiled_spec_and_kubeflow_files_have_no_secrets(spec_file: str, tmp_path) -> None:
    shipped = tmp_path / "shipped"
    shutil.copytree(os.path.join(ROOT, "kubeflow"), shipped, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    assert secrets_scan.scan_paths([spec_file, str(shipped)]) == []
    placeholders = tmp_path / "placeholders.yaml"
    placeholders.write_text("password: ${KFP_PASSWORD}\ntoken = <your token>\n")
    assert secrets_scan.scan_paths([str(placeholders)]) == []


def test_secret_scanner_reads_json_strings_honours_allowlist_comments_and_its_cli_exits_1(tmp_path, capsys) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"args": ["--runner=DataflowRunner", "--db-password=Hunter2Hunter2"],
                                "config": json.dumps({"api_key": "Hunter3Hunter3"})}, indent=2))
    assert [(f.line, f.kind) for f in secrets_scan.scan_paths([str(spec)])] == [
        (4, "Secret Keyword"), (6, "Secret Keyword")]
    manifest = tmp_path / "m.yaml"
    manifest.write_text("api_key: Hunter2Hunter2  # pragma: allowlist secret\npassword: Hunter3Hunter3\n")
    assert secrets_scan.main([str(manifest)]) == 1
    assert capsys.readouterr().out == f"{manifest}:2: Secret Keyword\n"
    assert secrets_scan.main([str(tmp_path / "missing.json")]) == 2
