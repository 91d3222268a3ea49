"""`python -m cli` is the `frugal` command."""

import sys

from cli.entry import main

sys.exit(main())
