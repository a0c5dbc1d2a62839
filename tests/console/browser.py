"""What the console's tests share: a page fetched over HTTP (`page`) and, for the browser tests, Debian's
chromium driven by Playwright (its own browser download cannot run on these machines), a host with the sample
engine to look at, and screenshots.

Without /usr/bin/chromium the browser tests skip, saying so; with EVENTSTORE_REQUIRE_BROWSER=1 (CI sets it)
they fail instead. Screenshots go to EVENTSTORE_SCREENSHOTS_DIR when it is set (`docs/admin` refreshes the
committed ones), else to the test's temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EngineHost
from tests.http.client import HttpApi, Response

SCRIPT = '<script>document.title="pwned"</script>'
"""Markup a client may send in any value: every page must show it as text."""


def page(api: HttpApi, path: str, **params: str) -> Response:
    """A console page over HTTP: HTML, never a stack trace."""
    answer = api.get(f"console/{path}".rstrip("/"), **params)
    assert answer.headers.get("content-type", "").startswith("text/html"), answer.headers
    assert "Traceback" not in answer.body.decode()
    return answer


CHROMIUM = Path(os.environ.get("EVENTSTORE_CHROMIUM", "/usr/bin/chromium"))
WIDTHS = {"wide": (1280, 900), "phone": (390, 844)}


def chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    message = (
        f"{CHROMIUM} is not installed, so the console's browser tests cannot run: `sudo apt-get install chromium` "
        "(scripts/bootstrap installs it when run as root)"
    )
    if os.environ.get("EVENTSTORE_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Root (as on CI machines) cannot use chromium's sandbox.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=str(executable), headless=True, args=args)
        try:
            yield launched
        finally:
            launched.close()


class Shots:
    """Screenshots of the console's pages at both widths, named `<page>-<width>.png`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, browser: Any, url: str, name: str, ready: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """Each width's page after loading `url` (and `ready`, which may wait for something): no page is
        wider than its screen (tables scroll inside their own box)."""
        pages = {}
        for width_name, (width, height) in WIDTHS.items():
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            if ready:
                ready(page)
            overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} at {width} px is {overflow} px wider than the screen"
            page.screenshot(path=str(self.folder / f"{name}-{width_name}.png"), full_page=True)
            pages[width_name] = page
        return pages


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Shots:
    chosen = os.environ.get("EVENTSTORE_SCREENSHOTS_DIR")
    return Shots(Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots"))


class ConsoleHost(EngineHost):
    """The engine's host with the console open."""

    def __init__(self, database_url: str, storage: str, queue: str, folder: Path) -> None:
        super().__init__(
            database_url, storage, queue, folder,
            EVENTSTORE_CONSOLE_ACCESS="open", EVENTSTORE_REPLAY_CONFIRM_OVER="3",
        )  # fmt: skip

    @property
    def console(self) -> str:
        return f"{self.api}/console"
