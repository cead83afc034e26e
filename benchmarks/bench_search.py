"""The PUCT search: network throughput inside it against the plain batched forward pass, and the
strength that playouts buy (Playouts=N against Playouts=0, the policy's own best move).

1. Throughput, one process, one torch thread, the same network and batch size for both:
   * baseline, plain batched forward: a batch of real observations on the host, `model(batch)`,
     logits and values back on the host, repeated;
   * evaluation inside the search: positions per second spent in `BatchEvaluator.evaluate`
     during `PuctSearch.run` (forward pass plus gathering the legal moves' logits and the
     softmax over them). Target: at least 70% of the baseline;
   * the whole search: playouts per second of search wall time (tree walk, move generation,
     features included), for scale;
   * `--together` positions searched at once in lockstep (evaluation matches) against the same
     searches one by one: positions per second.
   Each position's search is followed at once by the baseline over as many positions (a busy
   machine slows both alike); ratios are taken per trial, figures are medians over the trials.
   With `--compare-precision` part 1 runs in float32, then in bf16 (the network's precision).
2. Match: `--games` games, Playouts=`--playouts` against Playouts=`--opponent-playouts` (default
   0), on the same network. Games come in pairs from the same random opening (`--opening-plies`
   uniformly random moves), each side playing both colours; `--max-plies` ends a game as a draw.
   Run in `--workers` processes.

    .venv/bin/python benchmarks/bench_search.py [--checkpoint PATH] [--games 100]
        [--playouts 200] [--batch 16] [--workers 2] [--device cpu]

Without `--checkpoint` the latest checkpoint under runs/ is used, else an untrained network of
the default architecture (the match then measures what search adds to a random-ish policy).
"""

from __future__ import annotations

import keisei  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads, as `keisei` does)

# isort: split

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

from keisei.checkpoint import load_network
from keisei.checkpoint.errors import CheckpointNotFoundError
from keisei.model import FLOAT32, ActorCritic, Architecture, Precision
from keisei.search.batch_evaluator import BatchEvaluator
from keisei.search.limits import SearchControl
from keisei.search.puct import PuctSearch
from keisei.shogi import ShogiGame
from keisei.usi.agent import Agent, SearchSettings
from keisei.usi.locate import locate_checkpoint

TARGET_RATIO = 0.70
BF16 = Precision(torch.bfloat16, "bench_search --compare-precision")


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
    return load_network(path, device), str(path)


# --- 1. throughput ---------------------------------------------------------------------------


def plain_forward_seconds(
    model: ActorCritic, obs: np.ndarray, positions: int, device: Any
) -> float:
    """Seconds the plain batched forward pass takes for `positions` positions (host batch in,
    host results out), in batches of len(obs)."""
    batch = torch.from_numpy(obs)
    done = 0
    start = time.perf_counter()
    with torch.inference_mode():
        while done < positions:
            logits, values = model(batch.to(device))
            logits.cpu(), values.cpu()
            done += len(obs)
    return (time.perf_counter() - start) * positions / done


def throughput(model: ActorCritic, args: argparse.Namespace, device: Any) -> None:
    """Each search is followed at once by the plain forward pass over as many positions, so a
    busy machine slows both alike; the ratio is taken per trial, then the median."""
    games = [random_opening(1000 + i, plies) for i, plies in enumerate(range(0, 120, 10))]
    obs = np.stack([games[i % len(games)].observation() for i in range(args.batch)])
    evaluator = BatchEvaluator(model, args.batch, device)
    search = PuctSearch(evaluator)
    plain_forward_seconds(model, obs, args.batch * 20, device)  # warm-up
    search.run(games[1], SearchControl(max_playouts=50))
    base, inside, whole, ratios, whole_ratios, fills = [], [], [], [], [], []
    for _ in range(args.trials):
        eval_s = base_s = wall_s = 0.0
        positions = playouts = calls = 0
        for game in games:
            before = evaluator.positions, evaluator.seconds, evaluator.calls
            start = time.perf_counter()
            playouts += search.run(game, SearchControl(max_playouts=args.search_playouts)).playouts
            wall_s += time.perf_counter() - start
            evaluated = evaluator.positions - before[0]
            eval_s += evaluator.seconds - before[1]
            calls += evaluator.calls - before[2]
            positions += evaluated
            base_s += plain_forward_seconds(model, obs, evaluated, device)
        base.append(positions / base_s)
        inside.append(positions / eval_s)
        whole.append(playouts / wall_s)
        ratios.append(base_s / eval_s)
        whole_ratios.append((playouts / wall_s) / (positions / base_s))
        fills.append(positions / calls)
    ratio, whole_ratio = statistics.median(ratios), statistics.median(whole_ratios)
    b, i, w = (statistics.median(x) for x in (base, inside, whole))
    print(
        f"\n1. throughput, batch {args.batch}, {args.search_playouts} playouts x {len(games)} "
        f"positions, {args.trials} trials (medians), torch threads {torch.get_num_threads()}"
    )
    print(f"  plain batched forward (baseline)   {b:10.0f} positions/s")
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"  evaluation inside the search       {i:10.0f} positions/s   {ratio:6.1%} of baseline "
        f"(target >= {TARGET_RATIO:.0%}: {verdict}; per-trial {min(ratios):.0%}..{max(ratios):.0%})"
    )
    print(
        f"  whole search (tree + evaluation)   {w:10.0f} playouts/s    {whole_ratio:6.1%} "
        "of baseline"
    )
    print(f"  mean batch fill {statistics.median(fills):.1f} of {args.batch}")


def lockstep(model: ActorCritic, args: argparse.Namespace, device: Any) -> None:
    """`--together` positions searched at once (each forward pass carries the leaves of all of
    them, as for the games of an evaluation match) against the same searches one by one."""
    games = [random_opening(2000 + i, 8 * i) for i in range(args.together)]
    search = PuctSearch(
        BatchEvaluator(model, args.batch * len(games), device), leaf_batch=args.batch
    )
    search.run_many(games, SearchControl(max_playouts=50))  # warm-up
    together, alone = [], []
    for _ in range(args.trials):
        start = time.perf_counter()
        search.run_many(games, SearchControl(max_playouts=args.search_playouts))
        together.append(len(games) / (time.perf_counter() - start))
        start = time.perf_counter()
        for game in games:
            search.run(game, SearchControl(max_playouts=args.search_playouts))
        alone.append(len(games) / (time.perf_counter() - start))
    t, a = statistics.median(together), statistics.median(alone)
    print(
        f"  {len(games)} searches together {t:8.2f} positions/s   one by one {a:8.2f} positions/s"
        f"   ({t / a:.2f}x; {args.search_playouts} playouts, {args.batch} leaves a search a pass)"
    )


# --- 2. match --------------------------------------------------------------------------------

_AGENTS: dict[int, Agent] = {}


def _init_worker(state: dict[str, torch.Tensor], arch: dict[str, Any], batch: int) -> None:
    torch.set_num_threads(1)
    model = ActorCritic(Architecture.from_dict(arch))
    model.load_state_dict(state)
    model.eval()
    _AGENTS[0] = Agent(model, "cpu", SearchSettings(playouts=0, batch_size=batch))
    _AGENTS[1] = Agent(model, "cpu", SearchSettings(playouts=0, batch_size=batch))


def play_game(spec: tuple[int, int, int, int, int, int]) -> tuple[str, str, int]:
    """One game: (opening seed, opening plies, max plies, searcher's colour, its playouts, the
    opponent's playouts). Returns (outcome for the searcher, end reason, plies)."""
    seed, opening, max_plies, searcher_color, playouts, opponent_playouts = spec
    game = random_opening(seed, opening, max_plies)
    searcher, policy = _AGENTS[1], _AGENTS[0]
    while not game.is_over:
        if game.turn == searcher_color:
            result = searcher.choose(game, playouts)
        else:
            result = policy.choose(game, opponent_playouts)
        game.push_move(result.move)
    verdict = game.result
    assert verdict is not None
    if verdict.winner is None:
        return "draw", verdict.reason, game.ply
    won = verdict.winner == ("black", "white")[searcher_color]
    return ("win" if won else "loss"), verdict.reason, game.ply


def wilson_interval(score: float, games: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a score over `games` games (draws as half points)."""
    centre = (score + z * z / (2 * games)) / (1 + z * z / games)
    spread = z * math.sqrt(score * (1 - score) / games + z * z / (4 * games * games))
    spread /= 1 + z * z / games
    return max(centre - spread, 0.0), min(centre + spread, 1.0)


def elo(score: float) -> float:
    score = min(max(score, 1e-3), 1 - 1e-3)
    return -400 * math.log10(1 / score - 1)


def match(model: ActorCritic, args: argparse.Namespace) -> None:
    specs = [
        (
            args.seed + pair,
            args.opening_plies,
            args.max_plies,
            color,
            args.playouts,
            args.opponent_playouts,
        )
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
    low, high = wilson_interval(score, n)
    reasons = Counter(reason for _, reason, _ in results)
    plies = statistics.median(p for _, _, p in results)
    print(
        f"\n2. match, Playouts={args.playouts} against Playouts={args.opponent_playouts} "
        f"(the same network), {n} games, "
        f"{args.opening_plies} random opening plies, draw at {args.max_plies} plies, "
        f"{args.workers} workers, {minutes:.1f} min"
    )
    print(
        f"  Playouts={args.playouts}: {outcomes['win']} wins, {outcomes['draw']} draws, "
        f"{outcomes['loss']} losses"
    )
    print(
        f"  win rate {outcomes['win'] / n:.1%}, score {score:.1%} "
        f"(95% Wilson interval {low:.1%}..{high:.1%}), "
        f"Elo difference {elo(score):+.0f}"
    )
    by_colour = Counter(
        spec[3] for (outcome, _, _), spec in zip(results, specs, strict=True) if outcome == "win"
    )
    print(
        f"  baseline: Playouts={args.opponent_playouts} scores {1 - score:.1%} against it; "
        "the searcher won "
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
    parser.add_argument("--together", type=int, default=8, help="positions searched at once")
    parser.add_argument("--games", type=int, default=100)
    parser.add_argument("--playouts", type=int, default=200)
    parser.add_argument(
        "--opponent-playouts", type=int, default=0, help="0: the policy's own best move"
    )
    parser.add_argument("--opening-plies", type=int, default=6)
    parser.add_argument("--max-plies", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--compare-precision", action="store_true", help="part 1 in float32, then in bf16"
    )
    parser.add_argument("--skip-match", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    model, source = build_model(args.checkpoint, device)
    print(f"network: {source} ({model.architecture}), device {device}")
    if not args.skip_throughput:
        precisions = [FLOAT32, BF16] if args.compare_precision else [model.precision]
        for precision in precisions:
            model.precision = precision
            print(f"\nprecision {precision.name}:")
            throughput(model, args, device)
            lockstep(model, args, device)
    if not args.skip_match:
        match(model.cpu(), args)


if __name__ == "__main__":
    main()
