"""`keisei report RUN_DIR`: plots and a short Markdown summary of a training run.

Writes into `RUN_DIR/report/`: `elo.png` (maximum-likelihood Elo of each evaluated snapshot over
training steps, with 95% bands, and the incremental Elo; the ladder references played as labelled
horizontal lines), `outcomes.png` (win/draw/loss shares per opponent), `losses.png` (PPO losses
and entropy), `game_length.png` (self-play and evaluation game lengths), and `report.md` tying
them together, with the latest snapshot's score against each reference.

The Elo fit holds random at 0 and every reference with a rating stored in the shared ladder
registry (`ladder.sqlite` beside the run) at that rating, so the curve is on the ladder's scale
(`reference_opponents.fit_run`); references without one are fitted from the run's games.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from keisei.checkpoint.run_layout import RunLayout
from keisei.evaluation.ladder.ratings import ANCHOR
from keisei.evaluation.ladder.reference_opponents import (
    ReferenceLine,
    ReferenceScore,
    fit_run,
    latest_scores,
    played_references,
    reference_labels,
    reference_lines,
    run_ladder_settings,
    stored_ratings,
)
from keisei.evaluation.ladder.registry import LadderRegistryError, StoredRating
from keisei.evaluation.ratings.bradley_terry import FittedRating
from keisei.evaluation.ratings.elo import EloRegistry
from keisei.log import get_logger, read_metrics

_log = get_logger("report")


@dataclass
class OpponentRecord:
    wins: int = 0
    draws: int = 0
    losses: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses


def agent_results(registry: EloRegistry) -> dict[str, OpponentRecord]:
    """Results per opponent of the evaluated players: the training snapshots grouped as
    `agent`, and checkpoints evaluated with `keisei evaluate` under their own names."""
    kinds = {p.name: p.kind for p in registry.players()}
    table: dict[str, OpponentRecord] = defaultdict(OpponentRecord)
    for game in registry.games():
        subject = game.subject
        if subject is None or subject not in (game.black, game.white):
            continue
        side = "black" if subject == game.black else "white"
        opponent = game.white if side == "black" else game.black
        label = opponent if kinds.get(subject) == "agent" else f"{subject} vs {opponent}"
        record = table[label]
        if game.result == "draw":
            record.draws += 1
        elif game.result == side:
            record.wins += 1
        else:
            record.losses += 1
    return dict(table)


def _plot_elo(
    registry: EloRegistry,
    fitted: dict[str, FittedRating],
    references: list[ReferenceLine],
    path: Path,
) -> list[tuple[int, float, float, float]]:
    agents = sorted(
        (p for p in registry.players() if p.kind == "agent" and p.name in fitted),
        key=lambda p: p.step or 0,
    )
    points = [(p.step or 0, fitted[p.name].rating, fitted[p.name].low, fitted[p.name].high)
              for p in agents]  # fmt: skip
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if points:
        steps = [p[0] for p in points]
        ax.plot(steps, [p[1] for p in points], marker="o", label="Elo (maximum likelihood)")
        ax.fill_between(steps, [p[2] for p in points], [p[3] for p in points], alpha=0.25,
                        label="95% interval")  # fmt: skip
        ax.plot(steps, [p.rating for p in agents], linestyle="--", alpha=0.7,
                label="incremental Elo")  # fmt: skip
    for line in references:
        ax.axhline(line.rating, color="grey", linewidth=0.8,
                   linestyle="-" if line.source != "fitted" else ":")  # fmt: skip
    bottom, top = ax.get_ylim()
    gap = 0.045 * (top - bottom)  # labels closer than this are stacked upwards
    label_at = bottom - gap
    for line in sorted(references, key=lambda line: line.rating):  # at the right end, above it
        label_at = max(line.rating, label_at + gap)
        ax.annotate(line.text, (1.0, label_at), xycoords=("axes fraction", "data"),
                    xytext=(-4, 2), textcoords="offset points", ha="right", va="bottom",
                    fontsize=8, color="dimgrey")  # fmt: skip
    ax.set_xlabel("training step")
    ax.set_ylabel("Elo")
    ax.set_title("Agent rating over training")
    if points:  # no agent rated yet: nothing labelled to explain
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return points


def _stored(run: RunLayout) -> dict[str, StoredRating]:
    try:
        return stored_ratings(run.shared_ladder_database)
    except LadderRegistryError as exc:
        _log.warning("the references' stored ratings are not used: %s", exc)
        return {}


def _reference_section(scores: list[ReferenceScore]) -> list[str]:
    """The latest snapshot's score against each reference, or why the curve has none."""
    if not any(s.line.player != ANCHOR for s in scores):
        return [
            "No ladder reference besides random was played in this run's evaluations "
            "(`evaluation.reference_opponents` is 0, or their program is not installed), so "
            "random and the run's own checkpoints are the curve's only anchors: once the agent "
            "wins nearly every game against random, the curve says little.",
            "",
        ]
    lines = [
        "Reference opponents (the horizontal lines in the Elo plot), each with the latest "
        "snapshot that played it:",
        "",
        "| reference | Elo | snapshot | games | wins | draws | losses | score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        elo = f"{s.line.rating:.0f} ({s.line.source})"
        lines.append(f"| {s.line.label} | {elo} | step {s.step} | {s.score.games} | "
                     f"{s.score.wins} | {s.score.draws} | {s.score.losses} | "
                     f"{s.score.share:.0%} |")  # fmt: skip
    return [*lines, ""]


def _plot_outcomes(results: dict[str, OpponentRecord], path: Path) -> None:
    names = sorted(results)
    fig, ax = plt.subplots(figsize=(8, 0.6 * max(len(names), 2) + 1.5))
    left = [0.0] * len(names)
    for label, attr, color in (("win", "wins", "tab:green"), ("draw", "draws", "tab:grey"),
                               ("loss", "losses", "tab:red")):  # fmt: skip
        shares = [getattr(results[n], attr) / max(results[n].games, 1) for n in names]
        ax.barh(names, shares, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of games")
    ax.set_title("Agent results per opponent")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _series(records: list[dict], key: str) -> tuple[list[float], list[float]]:
    rows = [(r["step"], r[key]) for r in records if isinstance(r.get(key), int | float)]
    return [s for s, _ in rows], [v for _, v in rows]


def _plot_losses(records: list[dict], path: Path) -> None:
    keys = ["ppo/policy_loss", "ppo/value_loss", "ppo/entropy", "ppo/approx_kl"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6))
    for ax, key in zip(axes.flat, keys, strict=True):
        steps, values = _series(records, key)
        ax.plot(steps, values)
        ax.set_title(key)
        ax.set_xlabel("training step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_lengths(records: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    steps, values = _series(records, "games/mean_length")
    ax.plot(steps, values, label="self-play (last 100 games)")
    # Evaluations are placed at the step of the weights they played, not when they reported.
    evaluations = [(r["evaluation/step"], r["evaluation/avg_game_length"]) for r in records
                   if "evaluation/avg_game_length" in r]  # fmt: skip
    if evaluations:
        ax.plot(*zip(*evaluations, strict=True), marker=".", label="evaluation")
    ax.set_xlabel("training step")
    ax.set_ylabel("plies")
    ax.set_title("Game length")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(run_dir: str | Path) -> Path:
    """Write the plots and `report.md` into `run_dir/report/`; returns the Markdown file."""
    run = RunLayout(run_dir)
    if not run.root.is_dir():
        raise FileNotFoundError(f"no run directory {run.root}")
    out = run.report
    out.mkdir(exist_ok=True)
    records = read_metrics(run.metrics) if run.metrics.exists() else []
    lines = [f"# Keisei run report: {run.root.name}", ""]
    database = run.elo_database
    if database.exists():
        stored = _stored(run)
        labels = reference_labels(run_ladder_settings(run.root), stored)
        fixed = {name: s.rating for name, s in stored.items()}
        with EloRegistry(database) as registry:
            fitted = fit_run(registry.games(), fixed)
            references = reference_lines(played_references(registry, labels), labels, fixed,
                                         fitted)  # fmt: skip
            points = _plot_elo(registry, fitted, references, out / "elo.png")
            scores = latest_scores(registry, references)
            results = agent_results(registry)
            _plot_outcomes(results, out / "outcomes.png")
            games = len(registry.games())
        lines += [f"{games} evaluation games recorded.", ""]
        if points:
            step, rating, low, high = points[-1]
            scale = "random = 0"
            if any(line.source == "stored" for line in references):
                scale += ", references at their stored ladder ratings"
            lines += [
                f"Latest evaluated snapshot: step {step}, Elo {rating:.0f} "
                f"(95% interval {low:.0f} to {high:.0f}; {scale}).",
                "",
                "![Elo](elo.png)",
                "",
            ]
            lines += _reference_section(scores)
        lines += [
            "| opponent | games | wins | draws | losses | score |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in sorted(results.items()):
            score = (r.wins + 0.5 * r.draws) / max(r.games, 1)
            lines.append(f"| {name} | {r.games} | {r.wins} | {r.draws} | {r.losses} | "
                         f"{score:.0%} |")  # fmt: skip
        lines += ["", "![Outcomes](outcomes.png)", ""]
    else:
        lines += ["No evaluation games were recorded (periodic evaluation was off).", ""]
    if records:
        _plot_losses(records, out / "losses.png")
        _plot_lengths(records, out / "game_length.png")
        last = next((r for r in reversed(records) if "ppo/value_loss" in r), None)
        if last is not None:
            lines += [
                f"Final update (step {last['step']}): value loss {last['ppo/value_loss']:.4f}, "
                f"policy loss {last['ppo/policy_loss']:.4f}, entropy {last['ppo/entropy']:.3f}.",
                "",
            ]
        lines += ["![Losses](losses.png)", "", "![Game length](game_length.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    _log.info("report written to %s", path)
    return path
