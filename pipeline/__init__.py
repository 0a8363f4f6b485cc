"""The TFX pipeline: assembly (pipeline.py), values (configs.py), runners and CLIs."""

import os

# TFX 1.16 Transform/Trainer and TFP are built for Keras 2; must be set before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
