"""The TFX pipeline: assembly (pipeline.py), values (configs.py), runners and CLIs."""

import os
import warnings

# TFX 1.16 Transform/Trainer and TFP are built for Keras 2; must be set before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Google client libraries warn on every import that Python 3.10 support is ending; TFX 1.16 needs 3.10.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
