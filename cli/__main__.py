"""`python -m cli` is the `frugal` command."""

import sys

from cli.main import main

sys.exit(main())
