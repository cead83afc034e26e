"""Evaluation results kept beside a checkpoint: `evaluation.json` in its directory.

Training writes a checkpoint first and evaluates it afterwards, so what an evaluation found cannot
be in the checkpoint's manifest. It is written here, atomically, once the evaluation is over; the
retention policy's `best_metric` reads it, and an evaluation callback that finds it knows the
checkpoint was already rated. It is advisory (the Elo registry holds the games): it is not part of
the manifest's checksums, and a missing or unreadable file means "not evaluated".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from keisei.checkpoint.files import replace_atomic

EVALUATION_FILE = "evaluation.json"


def record_evaluation(checkpoint: str | Path, metrics: Mapping[str, float]) -> Path:
    """Write `metrics` (finite numbers only) as the checkpoint's evaluation results."""
    path = Path(checkpoint) / EVALUATION_FILE
    clean = {str(key): float(value) for key, value in metrics.items() if math.isfinite(value)}
    replace_atomic(path, json.dumps(clean, sort_keys=True).encode())
    return path


def read_evaluation(checkpoint: str | Path) -> dict[str, float] | None:
    """The checkpoint's evaluation results, or None when it has not been evaluated."""
    try:
        data = json.loads((Path(checkpoint) / EVALUATION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}
