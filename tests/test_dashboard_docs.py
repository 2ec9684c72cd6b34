"""The dashboard's documentation says what the dashboard and its benchmark do."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _dashboard_section() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"^## Dashboard\n(.*?)^## ", readme, re.MULTILINE | re.DOTALL)
    assert found, "README.md has no Dashboard section"
    return found.group(1)


def test_the_benchmark_table_has_a_row_for_the_dashboard_benchmark() -> None:
    table = (ROOT / "bench" / "README.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| `dashboard.py` |")]
    assert len(rows) == 1 and (ROOT / "bench" / "dashboard.py").exists()
    assert "overview" in rows[0] and "history" in rows[0]


def test_the_readme_counts_executions_by_machine_exactly_and_says_how_history_is_paged() -> None:
    section = _dashboard_section()
    assert "among the latest 200" not in section
    assert "exact" in section
    assert "5,000 events" in section and "/ui/executions/<name>/history" in section
    assert "login" in section and "CSRF" in section
