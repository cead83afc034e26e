"""The ladder's picture: the references as labelled horizontal lines at their ratings (their 95%
intervals shaded), the agent as a point with its 95% interval, all on the one Elo scale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@dataclass(frozen=True)
class PlottedRating:
    label: str
    rating: float
    low: float
    high: float


def plot_ladder(
    path: Path, title: str, references: Sequence[PlottedRating], agent: PlottedRating | None
) -> Path:
    """Write the PNG to `path` (its folder is created) and return the path."""
    fig, ax = plt.subplots(figsize=(7, 5))
    values = [v for r in references for v in (r.low, r.high)]
    if agent is not None:
        values += [agent.low, agent.high]
    bottom, top = (min(values), max(values)) if values else (-100.0, 100.0)
    margin = max(50.0, 0.08 * (top - bottom))
    bottom, top = bottom - margin, top + margin
    ax.set_ylim(bottom, top)
    gap = 0.045 * (top - bottom)  # labels closer than this are stacked upwards
    label_at = bottom - gap
    for reference in sorted(references, key=lambda r: r.rating):
        ax.axhline(reference.rating, color="tab:grey", linewidth=1.0)
        if reference.high > reference.low:
            ax.axhspan(reference.low, reference.high, color="tab:grey", alpha=0.07)
        label_at = max(reference.rating, label_at + gap)
        ax.annotate(f"{reference.label} ({reference.rating:.0f})", (1.0, label_at),
                    xycoords=("axes fraction", "data"), xytext=(-4, 2),
                    textcoords="offset points", ha="right", va="bottom", fontsize=8)  # fmt: skip
    if agent is not None:
        ax.errorbar([0.35], [agent.rating],
                    yerr=[[agent.rating - agent.low], [agent.high - agent.rating]], fmt="o",
                    color="tab:red", capsize=6, label=f"{agent.label}: {agent.rating:.0f} "
                    f"(95%: {agent.low:.0f} to {agent.high:.0f})")  # fmt: skip
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xticks([])
    ax.set_ylabel("Elo (random = 0)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
