"""VecShogiEnv throughput against a raw cshogi loop doing the same work per ply, in one run.

Both loops play uniformly random legal moves in N games at once, one process, one thread:

* raw cshogi: per ply, push the move, repetition count by Zobrist key, legal moves, their dlshogi
  labels (`make_move_label` per move), the dlshogi features into a preallocated batch, restart
  games that ended. This is the baseline the target refers to.
* raw cshogi, batched labels: the same, but the labels of all N games come from one lookup in
  keisei's precomputed `make_move_label` table after the per-game loop, as VecShogiEnv does. It
  shows what the environment's own bookkeeping costs, with the labelling trick factored out.
* VecShogiEnv.step: the same work, plus the legal-move mask, label -> move validation, the full
  rule set (perpetual check, declaration, ply limit), rewards and records.

Random choices are drawn the same way in both (one `rng.random(N)` per step). Trials alternate
between the two loops and the figures are medians over the trials (this machine is noisy).
Target: the environment delivers at least 60% of the raw loop's plies/s.

    .venv/bin/python benchmarks/bench_env.py [--envs 64 256] [--trials 5] [--plies 40000]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from itertools import chain
from pathlib import Path

import cshogi
import numpy as np
from cshogi.dlshogi import FEATURES1_NUM, FEATURES2_NUM, make_input_features, make_move_label

from keisei.shogi import VecShogiEnv
from keisei.shogi.encoding import labels_for_mixed_moves

MAX_PLIES = 512
TARGET_RATIO = 0.60


def raw_cshogi_plies_per_s(num_envs: int, steps: int, seed: int) -> float:
    """The baseline: N raw cshogi boards stepped together, same per-ply work, fewest layers."""
    rng = np.random.default_rng(seed)
    planes = FEATURES1_NUM + FEATURES2_NUM
    obs = np.zeros((num_envs, planes, 9, 9), dtype=np.float32)
    f1 = [obs[i, :FEATURES1_NUM] for i in range(num_envs)]
    f2 = [obs[i, FEATURES1_NUM:] for i in range(num_envs)]
    boards = [cshogi.Board() for _ in range(num_envs)]
    counts: list[dict[int, int]] = [{b.zobrist_hash(): 1} for b in boards]
    plies = [0] * num_envs
    legal = [list(b.legal_moves) for b in boards]
    labels = [[make_move_label(m, 0) for m in moves] for moves in legal]
    start = time.perf_counter()
    for _ in range(steps):
        sizes = np.fromiter(map(len, legal), dtype=np.int64, count=num_envs)
        picks = (rng.random(num_envs) * sizes).astype(np.int64).tolist()
        for i in range(num_envs):
            board = boards[i]
            board.push(legal[i][picks[i]])
            plies[i] += 1
            key = board.zobrist_hash()
            seen = counts[i].get(key, 0) + 1
            counts[i][key] = seen
            moves = list(board.legal_moves)
            if seen >= 4 or not moves or plies[i] >= MAX_PLIES:
                board.reset()
                counts[i] = {board.zobrist_hash(): 1}
                plies[i] = 0
                moves = list(board.legal_moves)
            color = board.turn
            legal[i] = moves
            labels[i] = [make_move_label(m, color) for m in moves]
            make_input_features(board, f1[i], f2[i])
    elapsed = time.perf_counter() - start
    return num_envs * steps / elapsed


def raw_batched_plies_per_s(num_envs: int, steps: int, seed: int) -> float:
    """The raw loop with the environment's batched label lookup (no mask, rules or records)."""
    rng = np.random.default_rng(seed)
    planes = FEATURES1_NUM + FEATURES2_NUM
    obs = np.zeros((num_envs, planes, 9, 9), dtype=np.float32)
    f1 = [obs[i, :FEATURES1_NUM] for i in range(num_envs)]
    f2 = [obs[i, FEATURES1_NUM:] for i in range(num_envs)]
    boards = [cshogi.Board() for _ in range(num_envs)]
    counts: list[dict[int, int]] = [{b.zobrist_hash(): 1} for b in boards]
    plies = [0] * num_envs
    legal = [list(b.legal_moves) for b in boards]
    turns = np.zeros(num_envs, dtype=np.int64)
    rows = np.arange(num_envs)
    start = time.perf_counter()
    for _ in range(steps):
        sizes = np.fromiter(map(len, legal), dtype=np.int64, count=num_envs)
        picks = (rng.random(num_envs) * sizes).astype(np.int64).tolist()
        for i in range(num_envs):
            board = boards[i]
            board.push(legal[i][picks[i]])
            plies[i] += 1
            key = board.zobrist_hash()
            seen = counts[i].get(key, 0) + 1
            counts[i][key] = seen
            moves = list(board.legal_moves)
            if seen >= 4 or not moves or plies[i] >= MAX_PLIES:
                board.reset()
                counts[i] = {board.zobrist_hash(): 1}
                plies[i] = 0
                moves = list(board.legal_moves)
            legal[i] = moves
            turns[i] = board.turn
            make_input_features(board, f1[i], f2[i])
        sizes = np.fromiter(map(len, legal), dtype=np.int64, count=num_envs)
        flat = np.fromiter(chain.from_iterable(legal), dtype=np.int64, count=int(sizes.sum()))
        labels_for_mixed_moves(flat, turns[np.repeat(rows, sizes)])
    elapsed = time.perf_counter() - start
    return num_envs * steps / elapsed


def env_plies_per_s(num_envs: int, steps: int, seed: int) -> float:
    """VecShogiEnv.step with random legal labels: observation, mask and step included."""
    rng = np.random.default_rng(seed)
    env = VecShogiEnv(num_envs, seed=seed, max_plies=MAX_PLIES)
    env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        env.step(env.sample_random_labels(rng))
    elapsed = time.perf_counter() - start
    return num_envs * steps / elapsed


def _rss_bytes() -> int | None:
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def memory_per_game(num_envs: int, steps: int) -> dict[str, float]:
    """Bytes per game: obs/mask buffers, Python objects (game histories, legal-move lists) and the
    process RSS growth, which also sees cshogi's C++ board state."""
    tracemalloc.start()
    rss_before = _rss_bytes()
    heap_before = tracemalloc.get_traced_memory()[0]
    env = VecShogiEnv(num_envs, seed=0, max_plies=MAX_PLIES)
    env.reset()
    for _ in range(steps):  # games grow their history; many reach mid-game lengths
        env.step(env.sample_random_labels())
    heap_after = tracemalloc.get_traced_memory()[0]
    rss_after = _rss_bytes()
    tracemalloc.stop()
    buffers = env._obs.nbytes + env._mask.nbytes  # numpy reports these to tracemalloc too
    out = {
        "buffers": buffers / num_envs,
        "python_objects": (heap_after - heap_before - buffers) / num_envs,
        "mean_ply": statistics.mean(game.ply for game in env.games),
    }
    if rss_before is not None and rss_after is not None:
        out["rss"] = (rss_after - rss_before) / num_envs
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--plies", type=int, default=40_000, help="plies per trial and loop")
    args = parser.parse_args()

    loops = {
        "raw": raw_cshogi_plies_per_s,
        "raw_batched": raw_batched_plies_per_s,
        "env": env_plies_per_s,
    }
    print("random legal moves, one process; plies/s are medians over trials (loops alternate)")
    print(
        f"{'N':>5} {'raw cshogi':>11} {'raw, batched':>13} {'VecShogiEnv':>12} "
        f"{'env/raw':>8} {'env/batched':>12}  trials"
    )
    verdicts = []
    for num_envs in args.envs:
        steps = max(1, args.plies // num_envs)
        figures: dict[str, list[float]] = {name: [] for name in loops}
        ratios: dict[str, list[float]] = {"raw": [], "raw_batched": []}
        for trial in range(args.trials):
            names = list(loops) if trial % 2 == 0 else list(loops)[::-1]
            result = {name: loops[name](num_envs, steps, seed=trial) for name in names}
            for name, value in result.items():
                figures[name].append(value)
            for base in ratios:
                ratios[base].append(result["env"] / result[base])
        median = {name: statistics.median(values) for name, values in figures.items()}
        ratio = statistics.median(ratios["raw"])
        verdicts.append(ratio >= TARGET_RATIO)
        print(
            f"{num_envs:>5} {median['raw']:>11,.0f} {median['raw_batched']:>13,.0f} "
            f"{median['env']:>12,.0f} {ratio:>8.2f} "
            f"{statistics.median(ratios['raw_batched']):>12.2f}  "
            f"{args.trials} x {steps * num_envs:,} plies"
        )
    memory = memory_per_game(256, 200)
    rss = f", process RSS growth {memory['rss'] / 1024:.1f} KiB" if "rss" in memory else ""
    print(
        f"memory per game (N=256, games on average {memory['mean_ply']:.0f} plies long): "
        f"obs+mask buffers {memory['buffers'] / 1024:.1f} KiB, "
        f"Python objects {memory['python_objects'] / 1024:.1f} KiB{rss}"
    )
    status = "met" if all(verdicts) else "NOT met"
    print(f"target: VecShogiEnv >= {TARGET_RATIO:.0%} of raw cshogi plies/s (env/raw): {status}")


if __name__ == "__main__":
    main()
