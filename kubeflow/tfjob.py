"""Multi-worker training on open-source Kubeflow: a Trainer whose step runs the training as a TFJob.

The Trainer step (``Trainer`` below, an ordinary ``tfx.components.Trainer`` with another executor) builds the command
Vertex AI training runs too, ``python -m tfx.scripts.run_executor`` with TFX's generic trainer executor and this
step's inputs, outputs and properties, submits a ``kubeflow.org/v1`` TFJob with one ``Chief`` and ``workers - 1``
``Worker`` replicas running it in the pipeline image, and waits until the TFJob has succeeded or failed. The Kubeflow
Training Operator sets ``TF_CONFIG`` (roles ``chief`` and ``worker``) in every replica, which
``model.distribute.get_strategy`` turns into MultiWorkerMirroredStrategy.

The replica settings (:class:`TFJobSettings`) are compiled into the Trainer's ``custom_config`` under
:data:`TFJOB_KEY`, so the pipeline spec holds the worker spec; the Trainer pod's service account needs RBAC to
create and get ``tfjobs`` in the namespace.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from tfx import v1 as tfx
from tfx.dsl.components.base import base_executor, executor_spec

log = logging.getLogger(__name__)

TFJOB_KEY = "tfjob"  # Trainer custom_config entry holding the TFJobSettings
GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "tfjobs", "TFJob"
CONTAINER_NAME = "tensorflow"  # the Training Operator finds the TensorFlow container (and its port) by this name
TRAINER_EXECUTOR = "tfx.components.trainer.executor.GenericExecutor"  # what each replica runs (run_fn)
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
POLL_SECONDS = 30


class TFJobError(RuntimeError):
    """The TFJob failed, or did not finish in time; the message says which, in one sentence."""


@dataclass(frozen=True)
class TFJobSettings:
    """The TFJob of one training run: ``workers`` replicas in total (one Chief), each a pod of ``image`` with these
    resources; ``namespace`` None is the Trainer pod's own; ``timeout_seconds`` bounds the job
    (``activeDeadlineSeconds``) and the wait."""

    workers: int
    image: str
    cpu: str
    memory: str
    namespace: str | None = None
    service_account: str | None = None
    timeout_seconds: int = 24 * 3600

    def __post_init__(self) -> None:
        if self.workers < 2:
            raise ValueError(f"a TFJob trains with at least 2 workers, not {self.workers}.")

    def to_custom_config(self) -> dict[str, Any]:
        """The Trainer ``custom_config`` entry (JSON values only)."""
        return {TFJOB_KEY: asdict(self)}

    @classmethod
    def from_custom_config(cls, custom_config: dict[str, Any]) -> TFJobSettings:
        if TFJOB_KEY not in custom_config:
            raise ValueError(f"the Trainer's custom_config has no {TFJOB_KEY!r} entry; compile with "
                             "kubeflow.runner --distribution tfjob.")
        return cls(**custom_config[TFJOB_KEY])


def tfjob_manifest(name: str, namespace: str, settings: TFJobSettings, command: list[str]) -> dict[str, Any]:
    """The TFJob: one Chief and ``workers - 1`` Workers running ``command``; failed pods restart, the job gives up
    after ``timeout_seconds``."""

    def replicas(count: int) -> dict[str, Any]:
        resources = {"cpu": settings.cpu, "memory": settings.memory}
        pod: dict[str, Any] = {"containers": [{
            "name": CONTAINER_NAME, "image": settings.image, "command": command,
            "resources": {"requests": resources, "limits": resources},
        }]}
        if settings.service_account:
            pod["serviceAccountName"] = settings.service_account
        return {"replicas": count, "restartPolicy": "OnFailure", "template": {"spec": pod}}

    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runPolicy": {"activeDeadlineSeconds": settings.timeout_seconds, "backoffLimit": 3,
                          "cleanPodPolicy": "Running"},
            "tfReplicaSpecs": {"Chief": replicas(1), "Worker": replicas(settings.workers - 1)},
        },
    }


def replica_command(input_dict: dict, output_dict: dict, exec_properties: dict[str, Any]) -> list[str]:
    """``python -m tfx.scripts.run_executor`` running TFX's generic trainer executor on this step's artifacts."""
    from tfx.types import artifact_utils

    return ["python", "-m", "tfx.scripts.run_executor", "--executor_class_path", TRAINER_EXECUTOR,
            "--inputs", artifact_utils.jsonify_artifact_dict(input_dict),
            "--outputs", artifact_utils.jsonify_artifact_dict(output_dict),
            "--exec-properties", json.dumps(exec_properties, sort_keys=True)]


def job_state(tfjob: dict[str, Any]) -> str | None:
    """``Succeeded`` or ``Failed`` once the TFJob has finished, else None."""
    for condition in (tfjob.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Succeeded", "Failed") and condition.get("status") == "True":
            return condition["type"]
    return None


def wait_for(api: Any, name: str, namespace: str, timeout_seconds: float, poll_seconds: float = POLL_SECONDS) -> None:
    """Poll the TFJob through ``api`` (a ``kubernetes.client.CustomObjectsApi``) until it succeeds; TFJobError when
    it fails or is still running after ``timeout_seconds``."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        tfjob = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        state = job_state(tfjob)
        if state == "Succeeded":
            return
        if state == "Failed":
            raise TFJobError(f"TFJob {namespace}/{name} failed; see `kubectl describe tfjob -n {namespace} {name}`.")
        if time.monotonic() >= deadline:
            raise TFJobError(f"TFJob {namespace}/{name} did not finish within {timeout_seconds:.0f} s.")
        time.sleep(poll_seconds)


def job_name(pipeline_name: str) -> str:
    """A unique DNS-1123 name for one training run (a retried step submits a new TFJob)."""
    stem = re.sub(r"[^a-z0-9-]+", "-", pipeline_name.lower()).strip("-")[:40] or "gmvae"
    return f"{stem}-train-{uuid.uuid4().hex[:8]}"


class Executor(base_executor.BaseExecutor):
    """Submit this Trainer step as a TFJob and wait for it (the replicas do the training and write the outputs)."""

    def Do(self, input_dict: dict, output_dict: dict, exec_properties: dict[str, Any]) -> None:
        from kubernetes import client
        from kubernetes import config as kube_config
        from tfx.types import standard_component_specs
        from tfx.utils import json_utils

        self._log_startup(input_dict, output_dict, exec_properties)
        custom_config = json_utils.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
        settings = TFJobSettings.from_custom_config(custom_config)
        replica_properties = {**exec_properties, standard_component_specs.CUSTOM_CONFIG_KEY: json_utils.dumps(
            {key: value for key, value in custom_config.items() if key != TFJOB_KEY})}
        command = replica_command(input_dict, output_dict, replica_properties)
        namespace = settings.namespace
        if namespace is None:
            with open(SERVICE_ACCOUNT_NAMESPACE) as f:
                namespace = f.read().strip()
        info = self._context.pipeline_info if self._context else None
        name = job_name(info.id if info else "gmvae")
        kube_config.load_incluster_config()
        api = client.CustomObjectsApi()
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                            tfjob_manifest(name, namespace, settings, command))
        log.info("submitted TFJob %s/%s with %d workers; waiting", namespace, name, settings.workers)
        wait_for(api, name, namespace, settings.timeout_seconds)
        log.info("TFJob %s/%s succeeded", namespace, name)


class Trainer(tfx.components.Trainer):
    """``tfx.components.Trainer`` whose step trains as a TFJob (settings in ``custom_config``, see
    :meth:`TFJobSettings.to_custom_config`)."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
