"""What the console's browser tests share: Debian's chromium driven by Playwright (its own browser download
cannot run on these machines), a host with the sample engine to look at, and screenshots.

Without /usr/bin/chromium the browser tests skip, saying so; with EVENTSTORE_REQUIRE_BROWSER=1 (CI sets it)
they fail instead. Screenshots go to EVENTSTORE_SCREENSHOTS_DIR when it is set (`docs/admin` refreshes the
committed ones), else to the test's temporary folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import requests

from eventstore_local.host.process import HostProcess
from tests.helpers import CONTINUATION_KEY

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


class ConsoleHost(HostProcess):
    """`eventstore host` with the console open and replays routed to the sample engine's queue."""

    def __init__(self, database_url: str, storage: str, queue: str, folder: Path) -> None:
        env = {
            "EVENTSTORE_DATABASE_URL": database_url,
            "AzureWebJobsStorage": storage,
            "EVENTSTORE_CONTINUATION_KEY": CONTINUATION_KEY,
            "EVENTSTORE_CONSOLE_ACCESS": "open",
            "EVENTSTORE_REPLAY_ROUTER__QUEUE": queue,
            "EVENTSTORE_REPLAY_SCHEDULE": "*/1 * * * * *",
            "EVENTSTORE_REPLAY_CONFIRM_OVER": "3",
            # The database may hold other tests' tenants: no timer goes over all of them.
            "EVENTSTORE_FEED_SCHEDULE": "0 0 0 * * *",
            "EVENTSTORE_VIEWS_SCHEDULE": "0 0 0 * * *",
            "EVENTSTORE_ALERTS_SCHEDULE": "0 0 0 * * *",
            "EVENTSTORE_FULL_PASS_SECONDS": "86400",
        }
        super().__init__(folder, env, ["--no-engine", "--eventgrid-port", "-1", "--alerts-port", "-1"])

    @property
    def console(self) -> str:
        return f"{self.api}/console"

    def call(self, method: str, path: str, body: Any = None, **params: str) -> requests.Response:
        return requests.request(method, f"{self.api}/{path}", json=body, params=params or None, timeout=60)

    def onboard(self) -> str:
        tenant = uuid4().hex + uuid4().hex
        assert self.call("PUT", f"tenants/{tenant}", {}).status_code == 201
        return tenant


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s (last: {found!r})"
        time.sleep(every)
