"""``python -m batch_scoring --model ... --input ... --output ...``: see :mod:`batch_scoring`."""

import logging
import os
import sys

# Only here, at the entry point (not for workers or importers): TensorFlow's C++ start-up lines (CUDA plug-ins not
# found, CPU features) and its Python deprecation notes (tfx-bsl's loader) are noise to a scoring job; set the
# variable to see them. Its Python logger follows the variable: 2 (no INFO or WARNING) or 3 keeps only its errors.
# At 2 the C++ ERROR lines stay: the "Unable to register cuDNN/cuFFT/cuBLAS factory" lines are logged while
# TensorFlow's library loads, before any Python runs, and only 3 hides them (with every other C++ error).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("2", "3"):
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

from batch_scoring.job import main  # noqa: E402 - after the variable, which TensorFlow reads on import

sys.exit(main())
