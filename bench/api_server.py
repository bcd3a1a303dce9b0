"""The FHIR endpoint for the HTTP benchmark: ``python bench/api_server.py --url STORE_URL --port PORT``.

Runs uvicorn (one process) with logging at warning, so the benchmark measures serving, not log writing.
"""

from __future__ import annotations

import argparse

import anyio

from bcconnect.api import serve
from bcconnect.config import ApiSettings, Settings, StoreSettings
from bcconnect.logging import configure_logging


def main() -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    configure_logging(level="warning", fmt="json")
    settings = Settings(store=StoreSettings(url=args.url), api=ApiSettings(host="127.0.0.1", port=args.port))
    anyio.run(serve, settings)


if __name__ == "__main__":
    main()
