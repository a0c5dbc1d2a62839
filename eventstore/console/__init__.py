"""The operator console: HTML pages over the same query functions as the JSON API (docs/console.md).

Served by the Function App under `/api/console/` (the Functions host refuses routes that start with `admin`,
its own management API's prefix). Pages are rendered on the server from jinja2 templates shipped as package
data, with every value escaped; there is no build step, no CDN and no script fetched from anywhere, so it
works offline and in a locked-down network. Who may open it is `EVENTSTORE_CONSOLE_ACCESS` (`console.access`).
"""
