"""Arguments several `keisei` commands share."""

from __future__ import annotations

import argparse


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (default: the built-in defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting; may be repeated",
    )


def add_precision_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--amp",
        choices=("auto", "off", "bf16", "fp16"),
        default="auto",
        help="what the network computes in: auto (default: bf16 where the device runs it fast, "
        "else float32), off (float32), bf16, fp16 (CUDA)",
    )
