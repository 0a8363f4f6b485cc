"""Upload the compiled pipeline to Kubeflow Pipelines (kfp 2.x client) and create its recurring (nightly) run.

Credentials never pass through this tool's flags or files: the kfp client uses the in-cluster service-account
token (``KF_PIPELINES_SA_TOKEN_PATH``) or your kube config, or a bearer token from the ``KFP_BEARER_TOKEN``
environment variable when that is set. ``--dry-run`` prints the exact submission as JSON and contacts nothing.

Examples:
  python -m kubeflow.schedule --dry-run
  python -m kubeflow.schedule --host http://ml-pipeline-ui.kubeflow:80 --cron "0 30 1 * * *"
  KFP_HOST=https://kfp.example.com python -m kubeflow.schedule --replace
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from typing import Any

import yaml

from kubeflow import config
from pipeline.cli import DefaultsHelpFormatter

TOKEN_ENV = "KFP_BEARER_TOKEN"
HOST_ENV = "KFP_HOST"


class ScheduleError(ValueError):
    """The schedule cannot be created; the message says why in one sentence."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kubeflow.schedule",
        description="Upload the spec compiled by kubeflow.runner as a new pipeline version and create a recurring "
        "run for it (one run at a time, no catch-up of missed runs). Defaults come from kubeflow/config.py.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--spec", default=config.COMPILED_SPEC,
                        help="compiled pipeline: the JSON PipelineJob or IR YAML written by kubeflow.runner")
    parser.add_argument("--host", default=os.environ.get(HOST_ENV),
                        help=f"KFP API endpoint (default: ${HOST_ENV}; unset inside the cluster = in-cluster address)")
    parser.add_argument("--namespace", default=None, help="Kubeflow profile namespace (multi-user deployments only)")
    parser.add_argument("--experiment", default=config.EXPERIMENT, help="experiment the runs are filed under "
                        "(created if missing)")
    parser.add_argument("--job-name", default=config.RECURRING_RUN_NAME, help="name of the recurring run")
    parser.add_argument("--cron", default=config.SCHEDULE_CRON,
                        help="KFP cron expression, 6 fields with seconds first ('0 0 2 * * *' = 02:00 daily, UTC)")
    parser.add_argument("--pipeline-root", default=None,
                        help="artifact root of the runs (default: the one compiled into --spec, else "
                        f"{config.PIPELINE_ROOT})")
    parser.add_argument("--service-account", default=config.RUN_SERVICE_ACCOUNT,
                        help="Kubernetes service account the run pods use (KFP default when unset)")
    parser.add_argument("--replace", action="store_true",
                        help="delete an existing recurring run of the same name in the experiment first")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the submission as JSON and exit without contacting anything")
    return parser


def check_cron(expression: str) -> str:
    """KFP (robfig/cron with seconds) needs 6 fields; a 5-field Unix cron would silently shift every field."""
    fields = expression.split()
    if len(fields) != 6:
        raise ScheduleError(f"--cron {expression!r} has {len(fields)} fields; KFP needs 6 with seconds first, "
                            f"e.g. '0 {expression}'." if len(fields) == 5 else
                            f"--cron {expression!r} has {len(fields)} fields; KFP needs 6 with seconds first.")
    return " ".join(fields)


def load_spec(path: str) -> tuple[dict[str, Any], str | None]:
    """(pipeline IR, pipeline root compiled into it) from a JSON PipelineJob or an IR YAML file."""
    if not os.path.isfile(path):
        raise ScheduleError(f"compiled spec {path!r} does not exist; run 'python -m kubeflow.runner' first.")
    with open(path) as f:
        try:
            doc = next(iter(yaml.safe_load_all(f)), None)  # JSON is YAML, so one loader reads both formats
        except yaml.YAMLError as err:
            raise ScheduleError(f"compiled spec {path!r} is neither JSON nor YAML ({err.__class__.__name__}).") from err
    if isinstance(doc, dict) and "pipelineSpec" in doc:
        return doc["pipelineSpec"], doc.get("runtimeConfig", {}).get("gcsOutputDirectory")
    if isinstance(doc, dict) and "root" in doc and "pipelineInfo" in doc:
        return doc, None
    raise ScheduleError(f"{path!r} is not a Kubeflow pipeline spec (no pipelineSpec, root or pipelineInfo).")


def cached_steps(ir: dict[str, Any]) -> list[str]:
    """The steps of a pipeline IR compiled with caching on (``kubeflow.runner`` without ``--no-cache``)."""
    tasks = ir.get("root", {}).get("dag", {}).get("tasks", {})
    return sorted(name for name, task in tasks.items() if (task.get("cachingOptions") or {}).get("enableCache"))


def build_plan(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that will be submitted, as plain JSON-able data: the dry run prints it, submit() sends it."""
    ir, compiled_root = load_spec(args.spec)
    name = ir["pipelineInfo"]["name"]
    digest = hashlib.sha256(json.dumps(ir, sort_keys=True).encode()).hexdigest()
    return {
        "host": args.host,
        "namespace": args.namespace,
        "auth": f"${TOKEN_ENV}" if os.environ.get(TOKEN_ENV) else "kfp default (in-cluster service account token "
                "or kube config)",
        "experiment": args.experiment,
        "pipeline": {"name": name, "version": f"{name}-{digest[:12]}", "spec": os.path.abspath(args.spec),
                     "sha256": digest},
        "replace_existing": args.replace,
        "cached_steps": cached_steps(ir),
        "recurring_run": {
            "job_name": args.job_name,
            "cron_expression": check_cron(args.cron),
            "max_concurrency": config.MAX_CONCURRENCY,
            "no_catchup": config.NO_CATCHUP,
            "enabled": True,
            "pipeline_root": args.pipeline_root or compiled_root or config.PIPELINE_ROOT,
            "service_account": args.service_account,
        },
    }


def _upload(client: Any, ir: dict[str, Any], plan: dict[str, Any]) -> tuple[str, str]:
    """(pipeline id, version id) of the spec, uploading the pipeline or a new version of it as needed."""
    name, version = plan["pipeline"]["name"], plan["pipeline"]["version"]
    with tempfile.TemporaryDirectory() as tmp:
        package = os.path.join(tmp, "pipeline.yaml")  # the kfp client reads IR from .yaml packages only
        with open(package, "w") as f:
            yaml.safe_dump(ir, f, sort_keys=True)
        pipeline_id = client.get_pipeline_id(name)
        if pipeline_id is None:
            pipeline_id = client.upload_pipeline(package, pipeline_name=name, namespace=plan["namespace"]).pipeline_id
        else:
            existing = _find(lambda token: client.list_pipeline_versions(pipeline_id, page_token=token, page_size=100),
                             "pipeline_versions", version)
            if existing is not None:
                return pipeline_id, existing.pipeline_version_id
        uploaded = client.upload_pipeline_version(package, pipeline_version_name=version, pipeline_id=pipeline_id)
        return pipeline_id, uploaded.pipeline_version_id


def _find(list_page: Any, field: str, display_name: str) -> Any:
    """First item named ``display_name`` across the pages returned by ``list_page(page_token)``."""
    token = ""
    while True:
        page = list_page(token)
        for item in getattr(page, field) or []:
            if item.display_name == display_name:
                return item
        token = page.next_page_token
        if not token:
            return None


def submit(plan: dict[str, Any], client: Any) -> str:
    """Create the experiment, upload the spec and create the recurring run; returns the recurring run id."""
    ir, _ = load_spec(plan["pipeline"]["spec"])
    run = plan["recurring_run"]
    experiment_id = client.create_experiment(plan["experiment"], namespace=plan["namespace"]).experiment_id
    existing = _find(lambda token: client.list_recurring_runs(page_token=token, page_size=100,
                                                               experiment_id=experiment_id),
                     "recurring_runs", run["job_name"])
    if existing is not None:
        if not plan["replace_existing"]:
            raise ScheduleError(f"recurring run {run['job_name']!r} already exists in experiment "
                                f"{plan['experiment']!r}; pass --replace to swap it for the new version.")
        client.delete_recurring_run(existing.recurring_run_id)
    pipeline_id, version_id = _upload(client, ir, plan)
    created = client.create_recurring_run(experiment_id=experiment_id, pipeline_id=pipeline_id,
                                          version_id=version_id, **run)
    return created.recurring_run_id


def make_client(plan: dict[str, Any]) -> Any:
    import kfp

    return kfp.Client(host=plan["host"], namespace=plan["namespace"] or "kubeflow",
                      existing_token=os.environ.get(TOKEN_ENV))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plan = build_plan(args)
        if plan["cached_steps"]:
            print(f"warning: {len(plan['cached_steps'])} steps of {args.spec} reuse cached results (compiled without "
                  "--no-cache), so a night whose inputs did not change keeps the last run's model and its cluster-ID "
                  "alignment; compile nightly specs with 'python -m kubeflow.runner --no-cache'.", file=sys.stderr)
        if args.dry_run:
            print(json.dumps(plan, indent=2, sort_keys=True))
            return 0
        run_id = submit(plan, make_client(plan))
    except ScheduleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # kfp raises ApiException, urllib3 and auth errors alike: report, no traceback
        first_line = (str(err).strip().splitlines() or [""])[0]
        print(f"error: Kubeflow Pipelines request failed ({err.__class__.__name__}: {first_line}).", file=sys.stderr)
        return 1
    run = plan["recurring_run"]
    print(f"scheduled recurring run {run['job_name']!r} ({run_id}) at '{run['cron_expression']}' "
          f"for {plan['pipeline']['version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
