"""``python -m chicago_arrest.cli``: the command line (what the Makefile runs)."""

import sys

from chicago_arrest.cli.main import main

sys.exit(main())
