"""``python -m cxrdemo``: see :mod:`cxrdemo.cli`."""

import sys

from .cli import main

sys.exit(main())
