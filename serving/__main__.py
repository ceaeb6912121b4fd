"""``python -m serving [--host H] [--port P]``: serve the ranking API (settings from NUDGE_*)."""

from __future__ import annotations

import argparse
import sys

from serving.app import run_serve
from serving.settings import SettingsError


def main(argv: list[str] | None = None) -> int:
    """Parse options, then serve until interrupted; exit 2 on invalid settings."""
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8000, help="TCP port")
    parser.add_argument("--access-log", action="store_true", help="enable uvicorn access log")
    args = parser.parse_args(argv)
    try:
        run_serve(args.host, args.port, access_log=args.access_log)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
