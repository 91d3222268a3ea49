"""`python -m pipeline` is the `frugal` command (kept: SPEC names it); the command line is `cli/`."""

import sys

from cli.main import main

sys.exit(main())
