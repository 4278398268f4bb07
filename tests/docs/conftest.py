"""Print, after the session, how many code blocks of each documentation page ran."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .test_pages import report_lines

    lines = report_lines()
    if lines:
        terminalreporter.section("documentation code blocks (run / no-run / set-up shell)")
        for line in lines:
            terminalreporter.write_line(line)
