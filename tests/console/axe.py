"""Accessibility checks with axe-core (vendored: tests/console/assets/axe.min.js, see VENDORED.md).

`check_accessibility(page)` runs axe on the page as it is now and returns the violations of
impact serious or critical (axe's result objects: id, impact, help, helpUrl, nodes with target,
html and failureSummary); `describe(violations)` makes them an assertion message:

    violations = check_accessibility(page)
    assert not violations, describe(violations)

axe is evaluated through the DevTools protocol, so a page's Content-Security-Policy does not block
it and need not be loosened for tests.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parent / "assets" / "axe.min.js"
SEVERE = ("serious", "critical")


@cache
def _source() -> str:
    return AXE.read_text(encoding="utf-8")


def check_accessibility(page: Page, *, include: str | None = None, options: dict[str, Any] | None = None,
                        impacts: tuple[str, ...] = SEVERE) -> list[dict[str, Any]]:
    """axe's violations on `page` (or the part `include`, a CSS selector) whose impact is in
    `impacts`. `options` go to `axe.run` as they are (e.g. {"rules": {"color-contrast":
    {"enabled": False}}})."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_source() + "\n;undefined")
    results = page.evaluate(
        "async ([context, options]) => await window.axe.run(context ?? document, options ?? {})",
        [include, options],
    )
    return [v for v in results["violations"] if v.get("impact") in impacts]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['impact']}: {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:5]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node['html'][:160]}")
    return "\n".join(lines)
