"""A run's report: ``report.json`` (data) and ``report.html`` (a page to read).

``finish`` writes both beside the finished project; ``devlooper report THREAD_ID``
rebuilds them from the checkpoints of any thread, one that crashed included.
The iterations come from the step events the checkpoints keep (:mod:`.timeline`).
"""

from __future__ import annotations

from .html import render_html
from .readme import README, has_readme, project_readme
from .timeline import branch_events, iterations, state_events

__all__ = [
    "README", "branch_events", "has_readme", "iterations", "project_readme", "render_html", "state_events",
]
