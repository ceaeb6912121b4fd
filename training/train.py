"""Training entry (MLflow Project / direct): ``python training/train.py --data DIR``.

Thin shell over ``recommender.pipeline.run_train``; all logic lives in the library.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse options, train, print the registered version; exit 1 on bad config or data."""
    from recommender.config import ConfigError
    from recommender.data import DataValidationError
    from recommender.pipeline import run_train

    parser = argparse.ArgumentParser(description="Train, evaluate and register the nudge ranker.")
    parser.add_argument("--data", type=Path, required=True, help="Folder with the six tables.")
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(__file__).resolve().parent / "configs" / "default.yaml",
        help="YAML training config.",
    )
    parser.add_argument(
        "--promote",
        choices=("config", "yes", "no"),
        default="config",
        help="Run the promotion gate (default: as the config says).",
    )
    args = parser.parse_args(argv)
    promote = None if args.promote == "config" else args.promote == "yes"
    try:
        result = run_train(args.data, args.config, promote=promote)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    except DataValidationError as error:
        print(error.report(), file=sys.stderr)
        return 1
    print(f"run {result.run_id}: registered {result.model_uri}")
    if result.promoted is not None:
        print(
            f"promotion gate: {'promoted' if result.promoted else 'refused'} ({result.gate_reason})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
