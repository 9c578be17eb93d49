"""Fixtures for the policy analysis: the shipped policies analysed once per worker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from analysis_support import shipped_report  # noqa: E402

from gateway.analysis.report import Report  # noqa: E402


@pytest.fixture(scope="session")
def shipped() -> Report:
    return shipped_report()
