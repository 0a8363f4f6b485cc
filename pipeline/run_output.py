"""What ``python -m pipeline.run`` shows a person: component progress, training bars and a closing summary.

TFX, absl, Beam and TensorFlow log hundreds of INFO and WARNING lines per run. :func:`console_output` sends every
log record to a full log file under the output root and lets through to the console only one line when each
component starts and finishes (the LocalDagRunner logs both through absl) and warnings from this project's own
code; errors are reported once by ``pipeline.run`` (one sentence and an exit code) or by the traceback of an
unexpected exception, and are in the log file. :func:`summary_lines` turns the newest run's artifacts into the
closing summary: blessed or not and why, the key metrics, the pushed version, the report, TensorBoard and ML
Metadata.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from components.clustering_evaluator.constants import CANDIDATE, CANDIDATE_METRICS_FILE, METRICS_FILE, REPORT_MD
from components.versioned_pusher.constants import NOT_PUSHED_REASON
from model.features import EMPTY, LABELLED_METRICS, MAX_SHARE, MEAN_ELBO, MIN_SHARE, N_CLUSTERS, SILHOUETTE
from pipeline.configs import TENSORBOARD_DIR, TRAINER_VERBOSE_ENV

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Packages whose warnings a person running the pipeline should see (tests, TFX, Beam, TF are not among them).
PROJECT_PACKAGES = ("batch_scoring", "components", "model", "pipeline", "serving")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)d] %(message)s"

# The LocalDagRunner's and the launcher's messages (tfx/orchestration/local/local_dag_runner.py, portable/launcher.py).
_RUNNING = "Component %s is running."
_FINISHED = "Component %s is finished."
_SKIPPED = "Skipping component %s."
_CACHED = "A cached execution %d is used."


def log_path_for(output_root: str, now: float | None = None) -> str:
    """``<output_root>/logs/run-<local time>.log``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return os.path.join(output_root, "logs", f"run-{stamp}.log")


def is_project_record(record: logging.LogRecord) -> bool:
    """Whether a log record comes from this project's packages (not from a library, not from a test)."""
    path = os.path.realpath(record.pathname or "")
    return any(path.startswith(os.path.join(PROJECT_ROOT, package) + os.sep) for package in PROJECT_PACKAGES)


class ConsoleHandler(logging.Handler):
    """The console's view of the log: component progress lines and this project's warnings, nothing else."""

    def __init__(self, stream: TextIO, total: int = 0) -> None:
        super().__init__(logging.INFO)
        self.stream = stream
        self.total = total
        self.count = 0
        self._started: dict[str, tuple[int, float]] = {}
        self._cached: set[str] = set()
        self._current: str | None = None

    def _counter(self, number: int) -> str:
        width = len(str(self.total)) if self.total else 0
        return f"[{number:>{width}}/{self.total}]" if self.total else f"[{number}]"

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            node = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
            if record.msg == _RUNNING:
                self.count += 1
                self._started[node] = (self.count, time.monotonic())
                self._current = node
                self._write(f"{self._counter(self.count)} {node} ...")
            elif record.msg == _CACHED and self._current:
                self._cached.add(self._current)
            elif record.msg == _FINISHED and node in self._started:
                number, start = self._started[node]
                how = "cached" if node in self._cached else "done"
                self._write(f"{self._counter(number)} {node} {how} in {time.monotonic() - start:.1f} s")
                self._current = None
            elif record.msg == _SKIPPED:
                self.count += 1
                self._write(f"{self._counter(self.count)} {node} skipped")
            elif logging.WARNING <= record.levelno < logging.ERROR and is_project_record(record):
                self._write(f"warning: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


class CarriageReturnCollapser(io.TextIOBase):
    """A stderr for logs that are not a terminal: a progress bar redrawn with ``\\r`` becomes one line, its last
    state (tqdm's final ``pretrain: 100%|...| 20/20 [...]``), instead of hundreds of redraws."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            line = line.rsplit("\r", 1)[-1]
            if line.strip():
                self.stream.write(line + "\n")
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def close_pending(self) -> None:
        if self._pending.rsplit("\r", 1)[-1].strip():
            self.write("\n")
        self._pending = ""

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


def _is_console_handler(handler: logging.Handler) -> bool:
    """A handler that writes to a stream (stderr, stdout, a capture), as TensorFlow and absl install; not a file."""
    from absl.logging import ABSLHandler

    if isinstance(handler, ABSLHandler):
        return True
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


@contextlib.contextmanager
def console_output(log_path: str, verbose: bool = False, total_components: int = 0,
                   stream: TextIO | None = None) -> Iterator[ConsoleHandler | None]:
    """Send every log record to ``log_path``; unless ``verbose``, show only progress and project warnings.

    While active: the root logger is at INFO with a file handler (and, unless ``verbose``, a
    :class:`ConsoleHandler` instead of the stream handlers libraries installed on any logger), absl logs at INFO,
    Python warnings go through logging, and the Trainer draws one tqdm bar per training stage
    (:data:`TRAINER_VERBOSE_ENV`; ``verbose``: one Keras line per epoch, as before). When stderr is not a terminal
    the bars are collapsed into one line per stage. Everything is restored on exit.
    """
    from absl import logging as absl_logging

    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    stream = stream if stream is not None else sys.stderr
    root = logging.getLogger()
    saved_level, saved_verbosity = root.level, absl_logging.get_verbosity()
    saved_env = os.environ.get(TRAINER_VERBOSE_ENV)
    saved_stderr = sys.stderr
    file_handler = logging.FileHandler(log_path, encoding="utf-8")
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    detached: list[tuple[logging.Logger, logging.Handler]] = []
    console = None
    collapser = None
    if not verbose:
        loggers = [root] + [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
        for logger in loggers:
            for handler in list(logger.handlers):
                if _is_console_handler(handler):
                    logger.removeHandler(handler)
                    detached.append((logger, handler))
        console = ConsoleHandler(stream, total_components)
        root.addHandler(console)
        if not (hasattr(stream, "isatty") and stream.isatty()):
            collapser = CarriageReturnCollapser(stream)
            sys.stderr = collapser
    root.addHandler(file_handler)
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    logging.captureWarnings(True)
    os.environ[TRAINER_VERBOSE_ENV] = "2" if verbose else "1"
    try:
        yield console
    finally:
        if collapser is not None:
            collapser.close_pending()
        sys.stderr = saved_stderr
        logging.captureWarnings(False)
        absl_logging.set_verbosity(saved_verbosity)
        root.setLevel(saved_level)
        root.removeHandler(file_handler)
        file_handler.close()
        if console is not None:
            root.removeHandler(console)
        for logger, handler in detached:
            logger.addHandler(handler)
        if saved_env is None:
            os.environ.pop(TRAINER_VERBOSE_ENV, None)
        else:
            os.environ[TRAINER_VERBOSE_ENV] = saved_env


# --- the closing summary -------------------------------------------------------------------------------------------


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _share(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _first(outputs: Sequence[Any], kind: str) -> Any:
    return next((o for o in outputs if o.kind == kind), None)


def is_blessed(outputs: Sequence[Any]) -> bool:
    """Whether the run's evaluator blessed its candidate (the marker file TFX's Pusher reads in the ModelBlessing)."""
    from tfx.components.evaluator.constants import BLESSED_FILE_NAME

    blessing = _first(outputs, "ModelBlessing")
    return blessing is not None and os.path.exists(os.path.join(blessing.uri, BLESSED_FILE_NAME))


def metrics_line(metrics: dict[str, Any]) -> str:
    """``ACC 0.871  NMI 0.812  ARI 0.760  silhouette 0.214  mean ELBO -551.66`` (ACC/NMI/ARI only with labels)."""
    parts = [f"{name.upper()} {_number(metrics[name])}" for name in LABELLED_METRICS if name in metrics]
    parts.append(f"silhouette {_number(metrics.get(SILHOUETTE))}")
    parts.append(f"mean ELBO {_number(metrics.get(MEAN_ELBO), 2)}")
    return "  ".join(parts)


def clusters_line(metrics: dict[str, Any], chosen_by_data: bool = False) -> str:
    """``K=10, smallest 7.3%, largest 12.4%``; when the data chose K, a pointer to ``--clusters``, since the choice
    tends to fall below the true number of groups (bench/RESULTS.md row 52)."""
    k = metrics.get(N_CLUSTERS, "?")
    chosen = (" (chosen by the data, which often picks fewer than the true groups: --clusters K sets it)"
              if chosen_by_data else "")
    text = f"K={k}{chosen}, smallest {_share(metrics.get(MIN_SHARE))}, largest {_share(metrics.get(MAX_SHARE))}"
    empty = metrics.get(EMPTY)
    return text + (f", {empty} empty" if empty else "")


def summary_lines(outputs: Sequence[Any], metadata_path: str, log_path: str | None = None) -> list[str]:
    """The closing summary of a run from its outputs (``local_runner.RunOutput``: component, kind, state, uri,
    properties): blessed or not and why, the key metrics, the pushed version, the report, TensorBoard, ML Metadata.
    """
    from tfx.components.evaluator.constants import ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, NOT_BLESSED_FILE_NAME

    rows: list[tuple[str, str]] = []
    evaluation, blessing = _first(outputs, "ModelEvaluation"), _first(outputs, "ModelBlessing")
    evaluated = _read_json(os.path.join(evaluation.uri, METRICS_FILE)) if evaluation else None
    evaluated = evaluated if isinstance(evaluated, dict) else {}
    decision = evaluated.get("decision") or {}
    message = (blessing.properties.get(ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY) if blessing else None) or decision.get(
        "summary")
    if message is None and blessing is not None:
        message = "blessed" if is_blessed(outputs) else "not blessed" if os.path.exists(
            os.path.join(blessing.uri, NOT_BLESSED_FILE_NAME)) else None
    rows.append(("model", message or "not evaluated"))
    metrics = (evaluated.get(CANDIDATE) or {}).get("metrics")
    if metrics is None and blessing is not None:
        metrics = _read_json(os.path.join(blessing.uri, CANDIDATE_METRICS_FILE))
    if isinstance(metrics, dict) and metrics:
        rows.append(("metrics", metrics_line(metrics)))
        compared = evaluated.get("comparison")
        scored_k = isinstance(compared, dict) and bool(compared.get("k_scores"))  # scores exist only for a chosen K
        rows.append(("clusters", clusters_line(metrics, chosen_by_data=scored_k)))
    identity = evaluated.get("versions")
    if isinstance(identity, dict) and identity.get("diagnosis"):
        rows.append(("cluster IDs", f"{identity['diagnosis']} (vs the champion; best relabelling "
                                    f"{_share(identity.get('best_agreement'))})"))

    pushed = _first(outputs, "PushedModel")
    if pushed is not None and pushed.properties.get("pushed") == 1:
        destination = pushed.properties.get("pushed_destination", "?")
        version = pushed.properties.get("pushed_version", "?")
        copied = os.path.isdir(pushed.uri) and bool(os.listdir(pushed.uri))
        rows.append(("pushed", f"version {version}: {destination}"
                     + ("" if copied else " (already serving, nothing copied)")))
    else:
        reason = pushed.properties.get(NOT_PUSHED_REASON) if pushed is not None else None
        rows.append(("pushed", "nothing pushed" + (f" ({reason})" if reason else
                                                   " (not blessed)" if pushed is not None else "")))
        if message and message.startswith("not blessed"):
            rows.append(("if intended", "when a bound does not fit this data (a real small segment, a deliberate "
                                        "re-segmentation), --thresholds, --tolerances or --accept-resegmentation "
                                        "change it (see --help)"))

    if evaluation is not None and os.path.exists(os.path.join(evaluation.uri, REPORT_MD)):
        rows.append(("report", os.path.join(evaluation.uri, REPORT_MD)))
    model_run = _first(outputs, "ModelRun")
    if model_run is not None:
        rows.append(("TensorBoard", f"tensorboard --logdir {os.path.join(model_run.uri, TENSORBOARD_DIR)}"))
    rows.append(("ML Metadata", metadata_path))
    if log_path:
        rows.append(("full log", log_path))
    width = max(len(name) for name, _ in rows) + 1
    return [f"  {name + ':':<{width}} {value}" for name, value in rows]
