"""Finding the external USI engine the tests play against."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FAIRY_STOCKFISH = "/usr/games/fairy-stockfish"


def fairy_stockfish() -> str:
    """The Fairy-Stockfish binary; skipped only outside CI when it is not installed."""
    if Path(FAIRY_STOCKFISH).is_file() and os.access(FAIRY_STOCKFISH, os.X_OK):
        return FAIRY_STOCKFISH
    found = shutil.which("fairy-stockfish")
    if found:
        return found
    if os.environ.get("KEISEI_CI"):
        pytest.fail(f"KEISEI_CI is set but Fairy-Stockfish is not installed at {FAIRY_STOCKFISH}")
    pytest.skip(f"Fairy-Stockfish is not installed at {FAIRY_STOCKFISH} (and KEISEI_CI is unset)")
