"""`python -m pipeline` is the `frugal` command."""

import sys

from pipeline.cli import main

sys.exit(main())
