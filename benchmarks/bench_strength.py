"""Playing strength over training seeds: how every default change is judged.

Trains K runs of a candidate (`keisei train --config CONFIG`, seeds 0..K-1, each in its own run
directory under `--out`), plays each run's final checkpoint against the shipped ladder (its
node-limited references, so a busy machine does not change the result), every reference the
same `--games` games (no early stop), and prints per seed and pooled over the seeds:

* the score against each reference (wins/draws/losses) with its 95% Wilson interval;
* the agent's ladder Elo (random = 0, references fixed at their calibrated ratings): each seed's
  fit with its interval, and across seeds the mean with a 95% t-interval (seeds are the unit of
  replication: K = 3 gives wide intervals, honestly), the median and the range;
* the wall time of each training run.

`--against OTHER.yaml` trains and ladders a second candidate the same way and prints the Elo
difference (OTHER - CONFIG) with its Welch 95% interval. Results go to `--out` as JSON and a PNG.

The regression guard: `--record-baseline` writes the pooled result (with the references and games
it played) to `benchmarks/strength_baseline.json`; `--check` plays a candidate on those same
references and games and exits 1 when it is worse beyond the interval (the Welch interval of the
Elo difference lies wholly below 0). The guard's candidate is `benchmarks/strength/short.yaml`,
the default config on a short fixed budget (204,800 steps; ~25 min for 3 seeds with their
ladders on 2 idle cores).

    .venv/bin/python benchmarks/bench_strength.py configs/default.yaml --seeds 3
    .venv/bin/python benchmarks/bench_strength.py configs/default.yaml --against cand.yaml
    .venv/bin/python benchmarks/bench_strength.py benchmarks/strength/short.yaml --check
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from keisei.config import load_config
from keisei.evaluation.ladder.calibration import calibration_file, read_calibration
from keisei.evaluation.ladder.ratings import rate_agent
from keisei.evaluation.ladder.registry import ENGINE_FAILURES, SCORES
from keisei.evaluation.ladder.run import run_ladder
from keisei.evaluation.ladder.setup import ladder_settings, select_references
from keisei.evaluation.ladder.stopping import wilson_interval

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "benchmarks" / "strength_baseline.json"
T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
"""Student's t, 97.5% quantile, by degrees of freedom (larger: 1.96 is close enough)."""


@dataclass
class SeedResult:
    seed: int
    run_dir: str
    wall_s: float
    scores: dict[str, list[int]]
    """Reference -> [wins, draws, losses]."""
    elo: float | None
    elo_low: float | None
    elo_high: float | None
    games: list[tuple[str, str, float]] = field(default_factory=list)
    """(agent, reference, agent's score) for the pooled fit."""
    reference_ratings: dict[str, float] = field(default_factory=dict)
    """The references' (fixed) ratings, as the ladder used them."""


@dataclass
class Candidate:
    label: str
    config: str
    overrides: list[str]
    seeds: list[SeedResult]
    reference_ratings: dict[str, float]

    @property
    def elos(self) -> list[float]:
        return [s.elo for s in self.seeds if s.elo is not None]


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% t-interval of the mean (the mean alone for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = T_975.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """(mean(b) - mean(a), low, high): Welch's 95% interval of the difference."""
    difference = statistics.fmean(b) - statistics.fmean(a)
    if len(a) < 2 or len(b) < 2:
        return difference, math.nan, math.nan
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return difference, difference, difference
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = T_975.get(max(1, math.floor(dof)), 1.96) * se
    return difference, difference - half, difference + half


def trained(run_dir: Path) -> float | None:
    """The wall time of a finished run already in `run_dir` (from its metrics), or None."""
    metrics = run_dir / "metrics.jsonl"
    if not (run_dir / "checkpoints").is_dir() or not metrics.is_file():
        return None
    total = load_config(run_dir / "config.yaml").training.total_timesteps
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    steps = [row for row in rows if "time" in row and "step" in row]
    if len(steps) < 2 or steps[-1]["step"] < total:
        return None
    first, last = steps[0], steps[-1]  # from the first epoch's end: add its share of the run
    return (last["time"] - first["time"]) * last["step"] / (last["step"] - first["step"])


def train(config: str, overrides: list[str], seed: int, model_dir: Path, name: str) -> float:
    """One training run in `model_dir/name` (a real `keisei train`); its wall time."""
    command = [sys.executable, "-m", "keisei", "train", "--no-live", "--config", config,
               "--run-name", name, "--set", f"training.seed={seed}",
               "--set", f"logging.model_dir={model_dir}"]  # fmt: skip
    for override in overrides:
        command += ["--set", override]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training {name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def ladder(run_dir: Path, games: int, names: list[str], playouts: int) -> SeedResult:
    settings = ladder_settings(str(run_dir), None, [
        f"ladder.games_per_reference={games}", f"ladder.min_games={games}",
        "ladder.early_stop=false",
    ])  # fmt: skip
    result = run_ladder(run_dir, select_references(settings, names), settings, playouts=playouts)
    scores: dict[str, list[int]] = {}
    ratings: dict[str, float] = {}
    triples: list[tuple[str, str, float]] = []
    for rung in result.rungs:
        s = rung.rung.score
        scores[rung.name] = [s.wins, s.draws, s.losses]
        if rung.rating is not None:
            ratings[rung.name] = rung.rating.rating
        triples += [("agent", rung.name, SCORES[g.outcome]) for g in rung.rung.games
                    if g.reason not in ENGINE_FAILURES]  # fmt: skip
    rating = result.agent_rating
    return SeedResult(
        seed=-1,
        run_dir=str(run_dir),
        wall_s=0.0,
        scores=scores,
        elo=None if rating is None else rating.rating,
        elo_low=None if rating is None else rating.low,
        elo_high=None if rating is None else rating.high,
        games=triples,
        reference_ratings=ratings,
    )


def rerate(candidates: list[Candidate], ratings: dict[str, float]) -> None:
    """Fit every seed's Elo again from its games against `ratings` (the references' calibrated
    ratings when the benchmark ends), so that all seeds stand on the same scale even if the
    calibration was remade while they played."""
    for candidate in candidates:
        candidate.reference_ratings = {n: r for n, r in ratings.items() if n in
                                       candidate.seeds[0].scores}  # fmt: skip
        for seed in candidate.seeds:
            fit, _ = rate_agent(seed.games, "agent", ratings) if seed.games else (None, {})
            seed.elo, seed.elo_low, seed.elo_high = (
                (None, None, None) if fit is None else (fit.rating, fit.low, fit.high))  # fmt: skip
            seed.reference_ratings = dict(candidate.reference_ratings)


def calibrated_ratings(run_dir: Path) -> dict[str, float]:
    """The references' ratings in the calibration a ladder of `run_dir` reads now, by name."""
    settings = ladder_settings(str(run_dir), None, [])
    calibration = read_calibration(calibration_file(settings, run_dir.parent))
    return {c.name: c.rating for c in calibration.references}


def evaluate(args: argparse.Namespace, config: str, label: str, out: Path) -> Candidate:
    """Train and ladder every seed; with `--overlap`, a seed's ladder plays (in a thread) while
    the next seed trains (its results do not depend on the load, its wall time does)."""
    model_dir = out / "runs"
    laddering: list[tuple[int, float, Future[SeedResult]]] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        for seed in range(args.seeds):
            name = f"{label}-seed{seed}"
            wall = trained(model_dir / name) if args.reuse else None
            if wall is None:
                print(f"[{label}] seed {seed}: training ...", flush=True)
                wall = train(config, args.overrides, seed, model_dir, name)
            print(f"[{label}] seed {seed}: trained in {wall / 60:.1f} min; ladder ...", flush=True)
            future = pool.submit(ladder, model_dir / name, args.games, args.references,
                                 args.playouts)  # fmt: skip
            if not args.overlap:
                future.result()
            laddering.append((seed, wall, future))
        seeds: list[SeedResult] = []
        for seed, wall, future in laddering:
            result = future.result()
            result.seed, result.wall_s = seed, wall
            seeds.append(result)
            print_seed(label, result)
    return Candidate(label, config, list(args.overrides), seeds, seeds[0].reference_ratings)


def print_seed(label: str, result: SeedResult) -> None:
    elo = "unrated" if result.elo is None else (
        f"{result.elo:.0f} ({result.elo_low:.0f} to {result.elo_high:.0f})")  # fmt: skip
    parts = [f"{name} {w}/{d}/{lo}" for name, (w, d, lo) in result.scores.items()]
    print(f"[{label}] seed {result.seed}: Elo {elo}; " + "; ".join(parts), flush=True)


def pooled(candidate: Candidate) -> dict[str, object]:
    """Per-reference pooled scores and the Elo across seeds."""
    table: dict[str, object] = {}
    for name in candidate.seeds[0].scores:
        w, d, lo = (sum(s.scores[name][i] for s in candidate.seeds) for i in range(3))
        games = w + d + lo
        low, high = wilson_interval(w + 0.5 * d, games) if games else (math.nan, math.nan)
        shares = [(s.scores[name][0] + 0.5 * s.scores[name][1]) / max(sum(s.scores[name]), 1)
                  for s in candidate.seeds]  # fmt: skip
        table[name] = {"wdl": [w, d, lo], "score": (w + 0.5 * d) / games if games else math.nan,
                       "low": low, "high": high, "per_seed": shares,
                       "median": statistics.median(shares),
                       "min": min(shares), "max": max(shares)}  # fmt: skip
    elos = candidate.elos
    mean, low, high = t_interval(elos) if elos else (math.nan, math.nan, math.nan)
    games = [g for s in candidate.seeds for g in s.games]
    fit, _ = rate_agent(games, "agent", candidate.reference_ratings) if games else (None, {})
    return {
        "references": table,
        "elo": {"per_seed": elos, "mean": mean, "low": low, "high": high,
                "median": statistics.median(elos) if elos else math.nan,
                "min": min(elos, default=math.nan), "max": max(elos, default=math.nan),
                "pooled_fit": None if fit is None else [fit.rating, fit.low, fit.high]},
        "wall_min": [s.wall_s / 60 for s in candidate.seeds],
    }  # fmt: skip


def print_pooled(candidate: Candidate, summary: dict[str, object]) -> None:
    print(f"\n{candidate.label}: {candidate.config} {' '.join(candidate.overrides)}, "
          f"{len(candidate.seeds)} seeds")  # fmt: skip
    print(f"  {'reference':<34}{'W/D/L':>12}{'score':>8}{'95%':>16}{'median':>8}{'range':>14}")
    for name, row in summary["references"].items():  # type: ignore[attr-defined]
        w, d, lo = row["wdl"]
        wdl = f"{w}/{d}/{lo}"
        interval = f"{row['low']:.0%}-{row['high']:.0%}"
        spread = f"{row['min']:.0%}-{row['max']:.0%}"
        print(f"  {name:<34}{wdl:>12}{row['score']:>8.0%}{interval:>16}{row['median']:>8.0%}"
              f"{spread:>14}")  # fmt: skip
    elo = summary["elo"]  # type: ignore[index]
    print(f"  ladder Elo: mean {elo['mean']:.0f} (95% t-interval {elo['low']:.0f} to "
          f"{elo['high']:.0f}), median {elo['median']:.0f}, range {elo['min']:.0f} to "
          f"{elo['max']:.0f}; per seed {[round(e) for e in elo['per_seed']]}")  # fmt: skip
    if elo["pooled_fit"]:
        r, lo, hi = elo["pooled_fit"]
        print(f"  one fit over all seeds' games: {r:.0f} ({lo:.0f} to {hi:.0f})")
    walls = summary["wall_min"]  # type: ignore[index]
    print(f"  wall time per run: {', '.join(f'{w:.1f}' for w in walls)} min")


def plot(candidates: list[Candidate], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for x, candidate in enumerate(candidates):
        for s in candidate.seeds:
            if s.elo is not None:
                axis.errorbar(x + 0.08 * (s.seed - 1), s.elo,
                              yerr=[[s.elo - s.elo_low], [s.elo_high - s.elo]], fmt="o",
                              color=f"C{x}", capsize=3)  # fmt: skip
    for name, rating in candidates[0].reference_ratings.items():
        axis.axhline(rating, color="grey", linewidth=0.8, linestyle="--")
        axis.annotate(name, (len(candidates) - 0.5, rating), fontsize=7, va="bottom", ha="right")
    axis.set_xticks(range(len(candidates)), [c.label for c in candidates])
    axis.set_xlim(-0.5, len(candidates) - 0.5)
    axis.set_ylabel("ladder Elo (random = 0)")
    axis.set_title("Strength over seeds (95% intervals; references dashed)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="the candidate's config file")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--against", help="a second candidate's config file")
    parser.add_argument("--games", type=int, default=20, help="games against each reference")
    parser.add_argument("--references", type=lambda s: [n.strip() for n in s.split(",")],
                        default=[], help="names of ladder references (default: all)")  # fmt: skip
    parser.add_argument("--playouts", type=int, default=0, help="the agent searches (PUCT)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where runs and results go (default: runs/strength/<time>)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="ladder runs already finished in --out instead of training them",
    )
    parser.add_argument("--overlap", action="store_true",
                        help="ladder each seed while the next trains (wall times then include "
                        "the ladder's load)")  # fmt: skip
    parser.add_argument("--check", action="store_true", help="compare against the baseline")
    parser.add_argument("--record-baseline", action="store_true")
    args = parser.parse_args()
    if args.check and not args.references:  # the baseline's games, unless told otherwise
        recorded = json.loads(BASELINE.read_text())
        args.references = recorded.get("reference_names", [])
        args.games = recorded.get("games", args.games)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or REPO / "runs" / "strength" / stamp
    out.mkdir(parents=True, exist_ok=True)
    candidates = [evaluate(args, args.config, Path(args.config).stem, out)]
    if args.against:
        candidates.append(evaluate(args, args.against, Path(args.against).stem + "-b", out))
    rerate(candidates, calibrated_ratings(Path(candidates[0].seeds[0].run_dir)))
    summaries = [pooled(c) for c in candidates]
    for candidate, summary in zip(candidates, summaries, strict=True):
        print_pooled(candidate, summary)
    report: dict[str, object] = {
        "candidates": [
            {**asdict(c), "summary": s} for c, s in zip(candidates, summaries, strict=True)
        ]
    }
    status = 0
    if len(candidates) == 2:
        diff = welch(candidates[0].elos, candidates[1].elos)
        report["difference"] = diff
        print(f"\nElo difference {candidates[1].label} - {candidates[0].label}: {diff[0]:+.0f} "
              f"(Welch 95% interval {diff[1]:+.0f} to {diff[2]:+.0f})")  # fmt: skip
    if args.check:
        baseline = json.loads(BASELINE.read_text())
        diff = welch(baseline["elo"]["per_seed"], candidates[0].elos)
        worse = diff[2] < 0
        report["check"] = {"difference": diff, "worse": worse}
        print(
            f"\nagainst the baseline ({baseline['recorded']}: mean Elo "
            f"{baseline['elo']['mean']:.0f}): {diff[0]:+.0f} (95% {diff[1]:+.0f} to "
            f"{diff[2]:+.0f}) -> {'WORSE beyond the interval' if worse else 'not worse'}"
        )
        status = 1 if worse else 0
    if args.record_baseline:
        BASELINE.write_text(
            json.dumps(
                {
                    "recorded": stamp,
                    "config": args.config,
                    "overrides": args.overrides,
                    "games": args.games,
                    "seeds": args.seeds,
                    "reference_names": args.references,
                    **summaries[0],
                },
                indent=2,
            )
            + "\n"
        )
        print(f"baseline written: {BASELINE}")
    (out / "strength.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    plot(candidates, out / "strength.png")
    print(f"\nresults: {out / 'strength.json'}, plot: {out / 'strength.png'}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
