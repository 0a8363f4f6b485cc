"""Test set-up shared by every test: Keras 2 for TFX/TFP, quiet TensorFlow logs, the shared data path, and Beam's
portable runner (job service + external worker pool) for the runner-portability tests."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MNIST10K = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist10k.npz")
PORTABLE_START_SECONDS = 120  # both services import Beam (and the pool TensorFlow lazily) on a busy machine


@pytest.fixture
def mnist10k_path() -> str:
    if not os.path.exists(MNIST10K):
        pytest.skip(f"real MNIST sample not found at {os.path.abspath(MNIST10K)} (see ../shared/data/README.md)")
    return os.path.abspath(MNIST10K)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[2]} exited with {process.returncode} before listening on {port}.")
        with socket.socket() as s:
            if s.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{process.args[2]} did not listen on port {port} within {PORTABLE_START_SECONDS} s.")


@pytest.fixture
def portable_beam_args(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Pipeline options for Beam's PortableRunner against the Python job service with an EXTERNAL worker pool.

    Both run as separate processes (their own process groups, killed at the end with the SDK workers the pool
    forks), so every DoFn crosses the Fn API over gRPC and is unpickled in another interpreter, as on Flink,
    Spark or Dataflow.
    """
    logs = tmp_path_factory.mktemp("portable")
    # the pool starts each SDK worker as plain `python`: this interpreter's directory goes first on PATH
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_USE_LEGACY_KERAS": "1",
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    job_port, pool_port = free_port(), free_port()
    commands = {
        "worker_pool": [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                        "--service_port", str(pool_port)],
        "job_service": [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                        "--port", str(job_port), "--staging_dir", str(logs / "staging")],
    }
    processes = {}
    try:
        for name, command in commands.items():
            with open(logs / f"{name}.log", "w") as log:
                processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                   start_new_session=True)
        deadline = time.monotonic() + PORTABLE_START_SECONDS
        _wait_listening(pool_port, processes["worker_pool"], deadline)
        _wait_listening(job_port, processes["job_service"], deadline)
        yield ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}", "--environment_type=EXTERNAL",
               f"--environment_config=localhost:{pool_port}"]
    finally:
        for process in processes.values():  # the group: the service and the SDK workers it started
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
