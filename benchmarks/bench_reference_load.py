"""Does a ladder reference play the same on an idle and on a fully loaded machine?

Plays one checkpoint against ladder references twice: on the machine as it is, then beside
`--load` busy-loop processes (the same busy loops as `bench_eval_load.py`: on 2 cores, `--load 2`
keeps both busy, as a second training or CI would). Each reference plays the same `--games`
games (the ladder's openings, colours swapped in pairs, no early stop) in both conditions. By
default the references are the shipped node-limited one at Skill Level -20 (10,000 nodes a move)
and its time-limited twin (the same Skill Level, 100 ms a move, as the ladder used to be): a
node-limited engine searches the same tree however busy the machine is, a time-limited one
searches less when it gets less CPU. Printed per reference and condition: W/D/L from the agent's
side, the agent's score with its 95% Wilson interval, the mean seconds a game, and
the load average while it played. The agent plays greedily (the ladder's default), so any
difference comes from the reference (Fairy-Stockfish picks its weaker moves at random, so two
runs of the same reference differ within the intervals).

    .venv/bin/python benchmarks/bench_reference_load.py runs/<run> --games 40 --load 2
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from bench_eval_load import load_average, start_load, stop_load

import keisei  # noqa: F401  (first: its OpenMP wait policy applies to torch)
from keisei.config import LadderConfig, LadderReference
from keisei.evaluation.ladder.play import play_reference
from keisei.evaluation.ladder.setup import ladder_settings, reference_player, select_references
from keisei.evaluation.ladder.stopping import wilson_interval
from keisei.evaluation.players.network import load_checkpoint_player
from keisei.evaluation.players.usi_client import UsiEngine

NODE_LIMITED = "fairy-stockfish skill -20 (nodes 10000)"
_NODES = re.compile(r"\bnodes (\d+)")


def nodes_a_move(reference: LadderReference, plies: int = 40) -> float:
    """The median nodes the reference's engine searches a move over one game it plays against
    itself (from its own last `info ... nodes N` line of each move): what its limit lets it see."""
    searched: list[int] = []
    moves: list[str] = []
    with UsiEngine(reference.opponent.removeprefix("usi:"), options=reference.options) as engine:
        engine.new_game()
        for _ in range(plies):
            position = "startpos" + (" moves " + " ".join(moves) if moves else "")
            move = engine.best_move(position, byoyomi_ms=reference.byoyomi_ms,
                                    nodes=reference.nodes)  # fmt: skip
            found = _NODES.search(engine.last_info or "")
            searched.append(int(found.group(1)) if found else 0)
            if move in ("resign", "win"):
                break
            moves.append(move)
    return float(sorted(searched)[len(searched) // 2])


def timed_twin(reference: LadderReference, byoyomi_ms: int) -> LadderReference:
    """The same engine and options, limited by time instead of nodes."""
    name = reference.name.split(" (")[0] + f" ({byoyomi_ms} ms)"
    return reference.model_copy(update={"name": name, "nodes": None, "byoyomi_ms": byoyomi_ms})


def play(checkpoint: str, reference: LadderReference, settings: LadderConfig,
         seed: int) -> dict[str, float]:  # fmt: skip
    agent = load_checkpoint_player(checkpoint, greedy=settings.greedy, seed=settings.seed)
    opponent = reference_player(reference, seed=seed, timeout_s=settings.usi_timeout_s)
    started, before = time.monotonic(), os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as scratch:
            rung = play_reference(agent, opponent, reference, settings, Path(scratch))
    finally:
        opponent.close()
    seconds = time.monotonic() - started
    score = rung.score
    low, high = wilson_interval(score.wins + 0.5 * score.draws, score.games)
    return {"wins": score.wins, "draws": score.draws, "losses": score.losses,
            "score": (score.wins + 0.5 * score.draws) / score.games, "low": low, "high": high,
            "s_per_game": seconds / score.games,
            "load": (before + os.getloadavg()[0]) / 2}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="a run directory (its latest checkpoint) or a checkpoint")
    parser.add_argument("--games", type=int, default=40)
    parser.add_argument("--load", type=int, default=2, help="busy-loop processes when loaded")
    parser.add_argument("--references", default=NODE_LIMITED,
                        help="names of shipped ladder references, comma-separated")  # fmt: skip
    parser.add_argument("--byoyomi-ms", type=int, default=100, help="of the time-limited twins")
    parser.add_argument("--nodes-only", action="store_true",
                        help="measure the nodes a move only, play no games")  # fmt: skip
    args = parser.parse_args()
    settings = ladder_settings(args.target, None, [
        f"ladder.games_per_reference={args.games}", f"ladder.min_games={args.games}",
        "ladder.early_stop=false"])  # fmt: skip
    shipped = select_references(settings, [n.strip() for n in args.references.split(",")])
    references = [r for ref in shipped for r in (ref, timed_twin(ref, args.byoyomi_ms))]
    checkpoint = args.target
    print(f"{checkpoint}: {args.games} games a reference; loaded = {args.load} busy loops beside "
          f"it on {os.cpu_count()} cores", flush=True)  # fmt: skip
    rows: list[tuple[str, str, dict[str, float]]] = []
    searched: list[tuple[str, str, float]] = []
    for condition in ("idle", "loaded"):
        load = start_load(args.load) if condition == "loaded" else []
        try:
            time.sleep(2 if load else 0)
            for reference in references:
                searched.append((reference.name, condition, nodes_a_move(reference)))
            if args.nodes_only:
                continue
            for place, reference in enumerate(references):
                print(f"  {condition}: {reference.name} (load average {load_average()}) ...",
                      flush=True)  # fmt: skip
                rows.append(
                    (
                        reference.name,
                        condition,
                        play(checkpoint, reference, settings, settings.seed + 1 + place),
                    )
                )
        finally:
            stop_load(load)
    print(f"\n{'reference':<40}{'machine':>8}{'median nodes a move':>22}")
    for name, condition, nodes in searched:
        print(f"{name:<40}{condition:>8}{nodes:>22,.0f}")
    if args.nodes_only:
        return 0
    print(f"\n{'reference':<40}{'machine':>8}{'W/D/L':>10}{'score':>7}{'95%':>11}"
          f"{'s/game':>8}{'load':>6}")  # fmt: skip
    for name, condition, r in rows:
        wdl = f"{r['wins']:.0f}/{r['draws']:.0f}/{r['losses']:.0f}"
        print(
            f"{name:<40}{condition:>8}{wdl:>10}{r['score']:>7.0%}"
            f"{r['low']:>6.0%}-{r['high']:<4.0%}{r['s_per_game']:>8.1f}{r['load']:>6.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
