"""`keisei ladder --recalibrate`: the references rated from games among themselves.

Each pair of neighbouring references in `ladder.references` (the first and the second, the
second and the third, ...) plays games in twos, both from the same random opening (the openings
of the ladder's seed and the game's number, as in an agent's ladder) with colours swapped, until
the 95% interval of the pair's gap is narrower than `ladder.calibration.interval_elo` (once it
played `min_games`), or it played `max_games`. Games a program lost by crashing or hanging are
left out and replaced. Pairs play one after another, or `jobs` of them at a time in processes of
their own (node-limited references play the same however busy the machine is). Each game is
appended to a journal beside the file being made (`<file>.games.jsonl`) as it ends, so an
interrupted calibration, run again with the same references and settings, continues where it
stopped; the journal is removed once the calibration is written. A calibration already in the
file being made, played with the same game settings (`max_plies`, `random_opening_plies`,
`seed`), is continued too: each pair of the same two references keeps its wins, draws and
losses, so a second `--recalibrate` with more games or a narrower interval adds to the first.

Then every reference is rated jointly over all the games (Bradley–Terry, random fixed at 0, the
fitter of `keisei.evaluation.ratings.bradley_terry`): with games between neighbours only, each
gap is the pair's own and a reference's interval gathers those of the gaps below it. A pair in
which one side took every point has no finite gap: `CalibrationError` naming it, before any file
is written (put a reference between the two). So does a ladder without random, the anchor.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import os
import queue
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from keisei.config import LadderConfig, LadderReference
from keisei.evaluation.ladder.calibration import (
    CalibratedReference,
    Calibration,
    CalibrationError,
    Gap,
    engine_identities,
    write_calibration,
)
from keisei.evaluation.ladder.pair import (
    PairGame,
    PairResult,
    journal_of,
    one_sided,
    play_pair,
    previous_games,
)
from keisei.evaluation.ladder.ratings import ANCHOR, ANCHOR_RATING
from keisei.evaluation.ladder.reference_opponents import reference_name
from keisei.evaluation.ladder.setup import check_program
from keisei.evaluation.ratings.bradley_terry import fit_ratings
from keisei.log import get_logger

_log = get_logger("evaluation.ladder")
_POLL_S = 0.2
"""How often the parent looks for news from the pairs playing in other processes."""
_news: multiprocessing.queues.Queue[PairGame] | None = None
"""In a worker process: where its games are reported (set when the process starts)."""


def recalibrate(
    settings: LadderConfig,
    path: str | Path,
    *,
    command: str = "",
    on_game: Callable[[PairGame], None] | None = None,
    on_pair: Callable[[Gap], None] | None = None,
) -> Calibration:
    """Play every pair of neighbours in `settings.references`, rate them, write the
    calibration to `path` (see the module) and return it."""
    references = list(settings.references)
    if len(references) < 2:
        raise CalibrationError("--recalibrate needs at least two references (random and one more)")
    for reference in references:
        check_program(settings, reference)
    names = [reference_name(reference) for reference in references]
    if ANCHOR not in names:
        raise CalibrationError("--recalibrate needs the random reference in ladder.references: "
                               "it anchors the scale at 0")  # fmt: skip
    engines = engine_identities(references, settings.usi_timeout_s)
    started = time.monotonic()

    def finished(result: PairResult) -> None:
        gap = result.gap(references[result.pair].name, references[result.pair + 1].name)
        failures = len(result.games) - len(result.counted)
        _log.info(
            "%s vs %s: %d games, %d/%d/%d, gap %+.0f Elo (95%% %+.0f to %+.0f)%s",
            gap.upper,
            gap.lower,
            gap.games,
            gap.wins,
            gap.draws,
            gap.losses,
            gap.elo,
            gap.low,
            gap.high,
            f"; {failures} games lost to engine failures left out" if failures else "",
        )
        if on_pair is not None:
            on_pair(gap)

    journal = journal_of(path)
    previous = previous_games(Path(path), settings)
    try:
        journal.parent.mkdir(parents=True, exist_ok=True)
        journal.touch()
    except OSError as exc:
        raise CalibrationError(f"calibration journal {journal}: cannot write it: {exc}") from exc
    pairs = _play_pairs(settings, references, on_game, finished, journal, previous)
    lopsided = [p for p in pairs if one_sided(p)]
    if lopsided:
        raise CalibrationError(
            "no finite gap between "
            + "; ".join(f"{references[p.pair].name!r} and {references[p.pair + 1].name!r} (one "
                        f"side took every point of {len(p.counted)} games"
                        + (f", {len(p.games) - len(p.counted)} lost to engine failures"
                           if len(p.games) > len(p.counted) else "") + ")"
                        for p in lopsided)
            + f": put a reference between them (nothing was written; the games so far are in "
            f"{journal}, and a rerun continues from them)"
        )  # fmt: skip
    calibration = _rate(settings, references, names, pairs, engines, command)
    write_calibration(calibration, path)
    journal.unlink(missing_ok=True)
    _log.info(
        "calibration of %d references (%d games, %.0f min) written to %s",
        len(references),
        sum(g.games for g in calibration.gaps),
        (time.monotonic() - started) / 60,
        path,
    )
    return replace(calibration, path=Path(path))


def _play_pairs(
    settings: LadderConfig,
    references: Sequence[LadderReference],
    on_game: Callable[[PairGame], None] | None,
    finished: Callable[[PairResult], None],
    journal: Path,
    previous: dict[tuple[str, str], tuple[PairGame, ...]],
) -> list[PairResult]:
    """Every pair of neighbours played, here or in `settings.calibration.jobs` processes."""
    count = len(references) - 1
    jobs = min(settings.calibration.jobs, count)
    if jobs == 1:
        results = []
        for i in range(count):
            results.append(play_pair(settings, i, references[i], references[i + 1], on_game,
                                     journal, previous))  # fmt: skip
            finished(results[-1])
        return results
    context = multiprocessing.get_context("spawn")
    news: multiprocessing.queues.Queue[PairGame] = context.Queue()
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_start,
                               initargs=(news, os.getpid()))  # fmt: skip
    try:
        futures = {pool.submit(_play_pair_in_worker, settings, i, journal, previous): i
                   for i in range(count)}  # fmt: skip
        done: dict[int, PairResult] = {}
        while len(done) < count:
            _drain(news, on_game)
            for future in [f for f in futures if f.done() and futures[f] not in done]:
                done[futures[future]] = future.result()  # a failure is raised here
                _drain(news, on_game)
                finished(done[futures[future]])
            time.sleep(_POLL_S)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    _drain(news, on_game)
    return [done[i] for i in range(count)]


def _worker_start(news: multiprocessing.queues.Queue[PairGame], parent: int) -> None:
    """In a worker process, first: where to report games; and a watch that ends the process
    once its parent is gone (its engines, reading end of input, end with it)."""
    global _news
    _news = news
    threading.Thread(target=_end_when_orphaned, args=(parent,), daemon=True).start()


def _end_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_POLL_S)
    os._exit(1)


def _play_pair_in_worker(
    settings: LadderConfig,
    pair: int,
    journal: Path,
    previous: dict[tuple[str, str], tuple[PairGame, ...]],
) -> PairResult:
    """One pair in a worker process, each game reported to the parent."""
    references = settings.references
    report = _news.put if _news is not None else None
    return play_pair(settings, pair, references[pair], references[pair + 1], report, journal,
                     previous)  # fmt: skip


def _drain(
    news: multiprocessing.queues.Queue[PairGame], on_game: Callable[[PairGame], None] | None
) -> None:
    while True:
        try:
            game = news.get_nowait()
        except queue.Empty:
            return
        if on_game is not None:
            on_game(game)


def _rate(
    settings: LadderConfig,
    references: Sequence[LadderReference],
    names: Sequence[str],
    pairs: Sequence[PairResult],
    engines: dict[str, str],
    command: str,
) -> Calibration:
    triples = [triple for pair in pairs for triple in pair.triples()]
    fitted = fit_ratings(triples, anchor=ANCHOR, anchor_rating=ANCHOR_RATING)
    calibrated = []
    for reference, name in zip(references, names, strict=True):
        fit = fitted[name]
        games = sum(len(p.counted) for p in pairs if name in (p.lower, p.upper))
        calibrated.append(CalibratedReference(
            reference.name, name, reference.opponent, dict(reference.options),
            reference.byoyomi_ms, reference.nodes, round(fit.rating, 1), round(fit.low, 1),
            round(fit.high, 1), games,
        ))  # fmt: skip
    gaps = tuple(_rounded(p.gap(references[p.pair].name, references[p.pair + 1].name))
                 for p in pairs)  # fmt: skip
    rules = settings.calibration
    played = {
        "max_plies": settings.max_plies,
        "random_opening_plies": settings.random_opening_plies,
        "seed": settings.seed,
        "usi_timeout_s": settings.usi_timeout_s,
        "interval_elo": rules.interval_elo,
        "min_games": rules.min_games,
        "max_games": rules.max_games,
        "rating": "Bradley-Terry over all the games, random fixed at 0, prior sd 1000 Elo",
    }
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return Calibration(tuple(calibrated), gaps, engines, played, created, command)


def _rounded(gap: Gap) -> Gap:
    return replace(gap, elo=round(gap.elo, 1), low=round(gap.low, 1), high=round(gap.high, 1))


def describe_command(argv: Sequence[str]) -> str:
    """The command line that made a calibration, as a person would type it."""
    return shlex.join(["keisei", *argv])
