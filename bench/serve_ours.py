"""Fallback launcher for our server: what `camera-service serve --config FILE` runs, without
the CLI's argument parser (used only when `python -m camera_service` itself cannot start)."""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    from camera_service.app import run
    from camera_service.config import load_config

    config = load_config(args.config)
    return run(config, config.source)


if __name__ == "__main__":
    sys.exit(main())
