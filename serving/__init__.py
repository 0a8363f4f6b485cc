"""A pushed GMVAE model on disk and over TF Serving's REST API; no TFX imports.

* :mod:`serving.store`: the integer versions of a TF Serving base directory and the SavedModel to use;
* :mod:`serving.champion`: the champion record (``champion.json`` beside the versions), one reader, one writer;
* :mod:`serving.feature_spec`: the raw features a SavedModel parses, and values/tf.Examples checked against them;
* :mod:`serving.training_statistics`: the TFDV statistics of the training examples a SavedModel carries;
* :mod:`serving.request`: ``:predict`` request bodies and responses (CLI: ``python -m serving.request``).
"""

import os
import warnings

# An entry point (python -m): Keras 2 for the tf_keras-exported SavedModels, set before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")  # Python 3.10 end-of-support notices
