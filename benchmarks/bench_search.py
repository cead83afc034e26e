"""The PUCT search: network throughput inside it against the plain batched forward pass, and the
strength that playouts buy (Playouts=N against Playouts=0, the policy's own best move).

1. Throughput, one process, one torch thread, the same network and batch size for both:
   * baseline, plain batched forward: a batch of real observations on the host, `model(batch)`,
     logits and values back on the host, repeated;
   * evaluation inside the search: positions per second spent in `BatchEvaluator.evaluate`
     during `PuctSearch.run` (forward pass plus gathering the legal moves' logits and the
     softmax over them). Target: at least 70% of the baseline;
   * the whole search: playouts per second of search wall time (tree walk, move generation,
     features included), for scale.
   Trials alternate baseline and search; figures are medians over the trials.
2. Match: `--games` games, Playouts=`--playouts` against Playouts=0, on the same network. Games
   come in pairs from the same random opening (`--opening-plies` uniformly random moves), each
   side playing both colours; `--max-plies` ends a game as a draw. Run in `--workers` processes.

    .venv/bin/python benchmarks/bench_search.py [--checkpoint PATH] [--games 100]
        [--playouts 200] [--batch 16] [--workers 2] [--device cpu]

Without `--checkpoint` the latest checkpoint under runs/ is used, else an untrained network of
the default architecture (the match then measures what search adds to a random-ish policy).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np
import torch

from keisei.model import ActorCritic, Architecture
from keisei.shogi import ShogiGame
from keisei.training.checkpoint_errors import CheckpointNotFoundError
from keisei.usi.agent import Agent, SearchSettings, load_model
from keisei.usi.evaluator import BatchEvaluator
from keisei.usi.limits import SearchControl
from keisei.usi.locate import locate_checkpoint
from keisei.usi.search import PuctSearch

TARGET_RATIO = 0.70


# --- positions and the network --------------------------------------------------------------


def random_opening(seed: int, plies: int, max_plies: int | None = None) -> ShogiGame:
    """A game after `plies` uniformly random legal moves that do not end it."""
    rng = np.random.default_rng(seed)
    game = ShogiGame(max_plies=max_plies)
    while game.ply < plies:
        for move in rng.permutation(game.legal_moves()):
            game.push_move(int(move))
            if not game.is_over:
                break
            game.pop()
        else:
            break
    game.opening_plies = game.ply
    return game


def build_model(checkpoint: str | None, device: torch.device) -> tuple[ActorCritic, str]:
    if checkpoint is None:
        try:
            path = locate_checkpoint(None, None)
        except CheckpointNotFoundError:
            torch.manual_seed(0)
            return ActorCritic(Architecture()).eval().to(device), "untrained default network"
    else:
        path = locate_checkpoint(checkpoint, None)
    return load_model(path, device), str(path)


# --- 1. throughput ---------------------------------------------------------------------------


def plain_forward_rate(model: ActorCritic, obs: np.ndarray, positions: int, device: Any) -> float:
    """Positions/s of the plain batched forward pass (host batch in, host results out)."""
    batch = torch.from_numpy(obs)
    done = 0
    start = time.perf_counter()
    with torch.inference_mode():
        while done < positions:
            logits, values = model(batch.to(device))
            logits.cpu(), values.cpu()
            done += len(obs)
    return done / (time.perf_counter() - start)


def search_rates(
    model: ActorCritic, games: list[ShogiGame], playouts: int, batch: int, device: Any
) -> tuple[float, float, float, int]:
    """(evaluation positions/s inside the search, playouts/s overall, mean batch fill,
    positions evaluated)."""
    evaluator = BatchEvaluator(model, batch, device)
    search = PuctSearch(evaluator)
    total = 0
    start = time.perf_counter()
    for game in games:
        total += search.run(game, SearchControl(max_playouts=playouts)).playouts
    wall = time.perf_counter() - start
    fill = evaluator.positions / evaluator.calls
    return evaluator.positions / evaluator.seconds, total / wall, fill, evaluator.positions


def throughput(model: ActorCritic, args: argparse.Namespace, device: Any) -> None:
    games = [random_opening(1000 + i, plies) for i, plies in enumerate(range(0, 120, 10))]
    obs = np.stack([games[i % len(games)].observation() for i in range(args.batch)])
    plain_forward_rate(model, obs, args.batch * 20, device)  # warm-up
    search_rates(model, games[:2], 50, args.batch, device)
    base, inside, whole, fills = [], [], [], []
    for _ in range(args.trials):
        rate, overall, fill, evaluated = search_rates(
            model, games, args.search_playouts, args.batch, device
        )
        base.append(plain_forward_rate(model, obs, evaluated, device))
        inside.append(rate)
        whole.append(overall)
        fills.append(fill)
    b, i, w = (statistics.median(x) for x in (base, inside, whole))
    print(
        f"\n1. throughput, batch {args.batch}, {args.search_playouts} playouts x {len(games)} "
        f"positions, {args.trials} trials (medians), torch threads {torch.get_num_threads()}"
    )
    print(f"  plain batched forward (baseline)   {b:10.0f} positions/s")
    print(
        f"  evaluation inside the search       {i:10.0f} positions/s   {i / b:6.1%} of baseline "
        f"(target >= {TARGET_RATIO:.0%}: {'met' if i / b >= TARGET_RATIO else 'NOT met'})"
    )
    print(f"  whole search (tree + evaluation)   {w:10.0f} playouts/s    {w / b:6.1%} of baseline")
    print(f"  mean batch fill {statistics.median(fills):.1f} of {args.batch}")


# --- 2. match --------------------------------------------------------------------------------

_AGENTS: dict[int, Agent] = {}


def _init_worker(state: dict[str, torch.Tensor], arch: dict[str, Any], batch: int) -> None:
    torch.set_num_threads(1)
    model = ActorCritic(Architecture.from_dict(arch))
    model.load_state_dict(state)
    model.eval()
    _AGENTS[0] = Agent(model, "cpu", SearchSettings(playouts=0, batch_size=batch))
    _AGENTS[1] = Agent(model, "cpu", SearchSettings(playouts=0, batch_size=batch))


def play_game(spec: tuple[int, int, int, int, int]) -> tuple[str, str, int]:
    """One game: (opening seed, opening plies, max plies, searcher's colour, playouts).
    Returns (outcome for the searcher, end reason, plies)."""
    seed, opening, max_plies, searcher_color, playouts = spec
    game = random_opening(seed, opening, max_plies)
    searcher, policy = _AGENTS[1], _AGENTS[0]
    while not game.is_over:
        if game.turn == searcher_color:
            result = searcher.choose(game, playouts)
        else:
            result = policy.choose(game, 0)
        game.push_move(result.move)
    verdict = game.result
    assert verdict is not None
    if verdict.winner is None:
        return "draw", verdict.reason, game.ply
    won = verdict.winner == ("black", "white")[searcher_color]
    return ("win" if won else "loss"), verdict.reason, game.ply


def elo(score: float) -> float:
    score = min(max(score, 1e-3), 1 - 1e-3)
    return -400 * math.log10(1 / score - 1)


def match(model: ActorCritic, args: argparse.Namespace) -> None:
    specs = [
        (args.seed + pair, args.opening_plies, args.max_plies, color, args.playouts)
        for pair in range((args.games + 1) // 2)
        for color in (0, 1)
    ][: args.games]
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    start = time.perf_counter()
    with ProcessPoolExecutor(
        args.workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(state, model.architecture.to_dict(), args.batch),
    ) as pool:
        results = list(pool.map(play_game, specs))
    minutes = (time.perf_counter() - start) / 60
    outcomes = Counter(outcome for outcome, _, _ in results)
    n = len(results)
    score = (outcomes["win"] + 0.5 * outcomes["draw"]) / n
    # Normal approximation of the score's 95% interval, from the per-game scores.
    points = [1.0 if o == "win" else 0.5 if o == "draw" else 0.0 for o, _, _ in results]
    half = 1.96 * statistics.pstdev(points) / math.sqrt(n) if n > 1 else 0.0
    reasons = Counter(reason for _, reason, _ in results)
    plies = statistics.median(p for _, _, p in results)
    print(
        f"\n2. match, Playouts={args.playouts} against Playouts=0 (the same network), {n} games, "
        f"{args.opening_plies} random opening plies, draw at {args.max_plies} plies, "
        f"{args.workers} workers, {minutes:.1f} min"
    )
    print(
        f"  Playouts={args.playouts}: {outcomes['win']} wins, {outcomes['draw']} draws, "
        f"{outcomes['loss']} losses"
    )
    print(
        f"  win rate {outcomes['win'] / n:.1%}, score {score:.1%} "
        f"(95% CI {max(score - half, 0):.1%}..{min(score + half, 1):.1%}), "
        f"Elo difference {elo(score):+.0f}"
    )
    by_colour = Counter(
        spec[3] for (outcome, _, _), spec in zip(results, specs, strict=True) if outcome == "win"
    )
    print(
        f"  baseline: Playouts=0 scores {1 - score:.1%} against it; the searcher won "
        f"{by_colour[0]} as Black, {by_colour[1]} as White"
    )
    print(f"  end reasons {dict(reasons)}, median length {plies:.0f} plies")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="checkpoint or run directory (default: see above)")
    parser.add_argument("--device", default="cpu", help="device for part 1 (the match: CPU)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--search-playouts", type=int, default=800, help="per position, part 1")
    parser.add_argument("--games", type=int, default=100)
    parser.add_argument("--playouts", type=int, default=200)
    parser.add_argument("--opening-plies", type=int, default=6)
    parser.add_argument("--max-plies", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-match", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    model, source = build_model(args.checkpoint, device)
    print(f"network: {source} ({model.architecture}), device {device}")
    if not args.skip_throughput:
        throughput(model, args, device)
    if not args.skip_match:
        match(model.cpu(), args)


if __name__ == "__main__":
    main()
