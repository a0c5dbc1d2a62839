"""`python -m eventstore_local.host [--port 7071] [--app function_app:app] ...`: the local Functions host."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eventstore_local.host.cli import add_arguments, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eventstore_local.host",
        description="Serve a Functions app locally: HTTP triggers under /api, queue triggers from Azurite, "
        "timer triggers. Auth levels are not enforced.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
