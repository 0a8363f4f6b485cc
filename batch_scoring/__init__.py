"""Batch scoring with Apache Beam: every input row gets its cluster, probabilities, ELBO and latent mean, or a reason.

    python -m batch_scoring --model serving/ --input 'data/*.csv' --output scores/

Reads CSV (header row; feature columns named as the model expects), TFRecord files of ``tf.Example`` or Parquet.
A row's id is its value of ``--id-column`` (a column, or a tf.Example feature; default ``id`` where there is one),
else ``<file name>:<line number>`` (CSV), ``<file name>:<record index>`` (TFRecord) or ``<file name>:<row index>``.

Engines (``--engine``; ``auto``, the default, picks ``dofn`` for CSV/Parquet and ``runinference`` for TFRecord):

* ``dofn``: CSV/Parquet rows are validated and converted to numpy in batches of ``--batch-size`` rows by the reading
  DoFn (CSV: Python's csv module for the structure, Arrow's parser for the numbers; Parquet: Arrow columns), and each
  dense batch is scored with one call of the model's ``predict_features`` signature (no tf.Example at all) by a DoFn
  that loads the model once per worker. tf.Example input (TFRecord) is scored with ``serving_default`` in batches.
* ``runinference``: every row becomes the serialized tf.Example ``serving_default`` parses (built from the dense
  batches by tfx-bsl's C++ encoder) and is scored with tfx-bsl's ``RunInference`` (the BulkInferrer engine).

Both give the same numbers: ``predict_features`` casts each column to the model's raw dtype (int64 or float32, see
:mod:`serving.feature_spec`) exactly as parsing a tf.Example does. The rare row whose int64 values float32 cannot
hold exactly (beyond +-2**24) is scored through its tf.Example instead, so no value is ever rounded.

Rows that cannot be scored (missing, empty, non-numeric, NaN/inf or non-integer-for-int64 values, wrong field count,
unparsable records) go to the dead-letter file with the reason and the raw row. Outputs (in ``--output``):

* ``scores-SSSSS-of-NNNNN.csv``: ``id, cluster, elbo, cluster_probabilities_0.., latent_mean_0..``, rows sorted by
  input file and position;
* ``dead_letter-00000-of-00001.jsonl``: one JSON object per bad row: ``id, source, position, reason, raw``;
* ``summary.json``: the model, inputs, format, engine and id column, counts, timings and rows per second.

Names are fixed and every file is written to a temporary directory and moved into place only after the job
succeeded and ``scored + dead-lettered == read`` held, so re-running into the same directory replaces the same files.
The same code runs on a distributed runner: pass pipeline options with ``--beam-arg`` (e.g.
``--beam-arg=--runner=DataflowRunner --beam-arg=--project=... --beam-arg=--temp_location=gs://...``).

Modules: :mod:`~batch_scoring.options` (what the job is told), :mod:`~batch_scoring.read` (rows -> batches or dead
letters), :mod:`~batch_scoring.infer` (batches -> scores), :mod:`~batch_scoring.write` (output shards, commit),
:mod:`~batch_scoring.job` (the driver: ``run(argv=None, test_pipeline=None)``). Its throughput against a bare
SavedModel loop is measured by ``python -m bench.throughput``.
No ``tfx`` imports (tfx-bsl's ``RunInference`` and example coder are used).
"""

import os
import warnings

# An entry point (python -m): Keras 2 for the tf_keras-exported SavedModels, set before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")  # Python 3.10 end-of-support notices
