"""Test set-up shared by every test: Keras 2 for TFX/TFP, quiet TensorFlow logs, the shared data path."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

MNIST10K = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist10k.npz")


@pytest.fixture
def mnist10k_path() -> str:
    if not os.path.exists(MNIST10K):
        pytest.skip(f"real MNIST sample not found at {os.path.abspath(MNIST10K)} (see ../shared/data/README.md)")
    return os.path.abspath(MNIST10K)
