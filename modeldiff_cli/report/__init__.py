"""`modeldiff report`: a static HTML dashboard over run directories (reads each run's summary.json).

One renderer per command (``renderers/``, registered by command name in :mod:`.registry`); a command without
a renderer gets the generic page (summary + artifacts). Pure Python + numpy: no torch, no matplotlib, so a
report over a hundred runs takes seconds. Figures are SVG drawn from the runs' tables and matrices
(:mod:`.svg`); every script and style is inline, so the output folder works opened from disk.
"""

from __future__ import annotations

from .build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
