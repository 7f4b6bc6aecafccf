"""``python -m ponder.cli``: the ``ponder`` command."""

import sys

from ponder.cli.commands import main

sys.exit(main())
