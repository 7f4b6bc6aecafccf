"""``python -m ponder.cli``: the ``ponder`` command."""

import sys

from ponder.cli import main

sys.exit(main())
