"""The stream workers' consumer side (faust agents, offsets, hand-over)."""

from consumers.faust_import import import_faust

import_faust()  # before any module here imports faust: see consumers/faust_import.py
