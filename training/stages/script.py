"""`python -m slt_training.stages.<stage> CONFIG [--resume] [--override k=v ...]`, for every stage.

The stages are usually run through `slt train …` (typer); this plain argparse entry point
is what `accelerate launch -m slt_training.stages.<stage>` and debuggers start.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any


def stage_main(
    description: str, config_type: type, train: Callable[..., Any], argv: list[str] | None
) -> None:
    """Parse CONFIG / --resume / --override, set logging from SLT_LOG, run `train`; a
    `SltError` becomes one `error: …` line and exit code 2, as in the `slt` CLI."""
    from slt_serve.errors import SltError
    from slt_training.config import load_config

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--override", action="append", default=[])
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("SLT_LOG", "INFO"))
    try:
        train(load_config(args.config, config_type, args.override), resume=args.resume)
    except SltError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
