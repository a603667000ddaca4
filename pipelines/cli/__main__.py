"""``python -m pipelines.cli``: the same as ``activitylog``."""

import sys

from pipelines.cli import main

sys.exit(main())
