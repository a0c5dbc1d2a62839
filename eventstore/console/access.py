"""Who may open the console, and who did what in it.

In Azure the console sits behind App Service Authentication with Microsoft Entra ID: a request that reaches
the app signed in carries `X-MS-CLIENT-PRINCIPAL-NAME`, which App Service sets itself and strips from every
request that comes from outside. Locally (`eventstore host`, on 127.0.0.1) it is open, and the banner says so.
A form that changes something (a replay) must come from the console's own pages: the browser's `Origin`
(or `Sec-Fetch-Site`) must say so, so that another site cannot make a signed-in operator's browser post it.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import azure.functions as func

from eventstore.settings import Settings

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL-NAME"
OPEN_ACCESS_NAME = "console (open access)"


class ConsoleRefused(Exception):
    def __init__(self, status: int, title: str, detail: str, sign_in: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.sign_in = status, title, detail, sign_in


def principal(req: func.HttpRequest, settings: Settings) -> str:
    """Who is asking: the signed-in principal, or (open access) the console itself. `ConsoleRefused` when the
    console is off, or nobody is signed in."""
    access = settings.console_access
    if access == "off":
        raise ConsoleRefused(
            403, "The console is off", "Set EVENTSTORE_CONSOLE_ACCESS to entra (Azure) or open (local only)."
        )
    name = (req.headers.get(PRINCIPAL_HEADER) or "").strip()
    if access == "entra":
        if not name:
            back = urlsplit(req.url)
            here = back.path + (f"?{back.query}" if back.query else "")
            raise ConsoleRefused(
                401, "Sign in", "The console needs a signed-in operator (App Service Authentication).",
                sign_in=f"/.auth/login/aad?post_login_redirect_uri={quote(here, safe='')}",
            )  # fmt: skip
        return name
    return name or OPEN_ACCESS_NAME


def same_origin(req: func.HttpRequest) -> None:
    """Refuse a state-changing form post that did not come from the console's own pages."""
    site = req.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site in ("same-origin", "none"):
            return
        raise ConsoleRefused(403, "Refused", "A change must be asked from the console's own pages.")
    origin = req.headers.get("Origin")
    host = req.headers.get("Host")
    if origin is None or host is None or urlsplit(origin).netloc != host:
        raise ConsoleRefused(403, "Refused", "A change must be asked from the console's own pages (Origin).")
