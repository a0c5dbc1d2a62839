"""The console tests' fixtures: the browser and the screenshots (tests/console/browser.py)."""

from tests.console.browser import browser, shots

__all__ = ["browser", "shots"]
