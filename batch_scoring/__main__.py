"""``python -m batch_scoring --model ... --input ... --output ...``: see :mod:`batch_scoring`."""

import sys

from batch_scoring.job import main

sys.exit(main())
