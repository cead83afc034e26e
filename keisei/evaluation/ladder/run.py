"""`keisei ladder`: one ladder, played, rated and stored (the rules: `keisei.evaluation.ladder`).

`run_ladder` reads the calibration, sets the references up and checks their programs, climbs
them, rates the agent against the calibrated ratings (and those stored for uncalibrated
references; new uncalibrated ones are fitted with it), stores the games and the uncalibrated
references' ratings in the ladder registry and the run's Elo database, and draws `ladder.png`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from keisei.checkpoint.run_layout import RunLayout
from keisei.config import ConfigError, LadderConfig, LadderReference
from keisei.evaluation.ladder.calibration import (
    Calibration,
    calibration_file,
    check_engines,
    engine_identities,
    read_calibration,
    warn_uncalibrated,
)
from keisei.evaluation.ladder.play import Rung, climb
from keisei.evaluation.ladder.plot import PlottedRating, plot_ladder
from keisei.evaluation.ladder.ratings import (
    ANCHOR,
    ANCHOR_RATING,
    rate_agent,
    references_around,
    refit_references,
)
from keisei.evaluation.ladder.registry import (
    ENGINE_FAILURES,
    SCORES,
    AgentRating,
    LadderRegistry,
    StoredRating,
    record_agent_rating,
)
from keisei.evaluation.ladder.setup import check_program, reference_player
from keisei.evaluation.players.base import Player
from keisei.evaluation.players.network import load_checkpoint_player
from keisei.evaluation.ratings.bradley_terry import FittedRating
from keisei.evaluation.ratings.elo import EloRegistry
from keisei.evaluation.result import GameResult
from keisei.log import get_logger

_log = get_logger("evaluation.ladder")


@dataclass(frozen=True)
class RungResult:
    """One reference of a finished ladder: what was played, and its rating."""

    rung: Rung
    rating: StoredRating | None
    """Its rating after this ladder (the anchor's is 0), or None: not rated."""
    rated: str
    """How it got that rating, or why it has none, in words."""

    @property
    def name(self) -> str:
        return self.rung.reference.name


@dataclass(frozen=True)
class LadderResult:
    """Everything a ladder produced (`keisei ladder` prints it)."""

    agent: str
    checkpoint: Path
    run_dir: Path
    session: str
    rungs: tuple[RungResult, ...]
    agent_rating: FittedRating | None
    """Against the references' stored ratings; None without any rated reference played."""
    registry: Path
    record_dir: Path
    plot: Path
    refit: bool
    calibration: Path | None = None
    """The calibration file whose ratings the calibrated references kept."""

    @property
    def games(self) -> int:
        return sum(r.rung.score.games for r in self.rungs)

    def around(self) -> tuple[RungResult | None, RungResult | None]:
        """The rated references just below and just above the agent's rating (e.g. the two to
        play next in a background evaluation); (None, None) when the agent is not rated."""
        if self.agent_rating is None:
            return None, None
        rated = {r: r.rating.rating for r in self.rungs if r.rating is not None}
        return references_around(self.agent_rating.rating, rated)


def run_ladder(
    checkpoint: str | Path,
    references: Sequence[LadderReference],
    settings: LadderConfig,
    *,
    refit: bool = False,
    playouts: int = 0,
    registry: str | Path | None = None,
    calibration: Calibration | None = None,
    device: str = "cpu",
    precision: str = "auto",
    on_game: Callable[[LadderReference, GameResult], None] | None = None,
    on_rung: Callable[[Rung], None] | None = None,
) -> LadderResult:
    """Play and rate the ladder (see the module); `registry` defaults to the shared file beside
    the run, `calibration` to the file `ladder.calibration` names (`calibration.calibration_file`).
    `playouts` > 0 has the checkpoint search that many playouts a move; its network computes in
    `precision` (a `ppo.amp` setting)."""
    if playouts < 0:
        raise ConfigError(f"--playouts must be at least 0, got {playouts}")
    for reference in references:
        check_program(settings, reference)
    extra = {"playouts": playouts} if playouts else {}
    agent = load_checkpoint_player(checkpoint, greedy=settings.greedy, seed=settings.seed,
                                   device=device, precision=precision, **extra)  # fmt: skip
    assert agent.path is not None
    home = RunLayout(Path(agent.path).parent.parent)
    shared_path = Path(registry) if registry is not None else home.shared_ladder_database
    if calibration is None:
        calibration = read_calibration(calibration_file(settings, shared_path.parent))
    opponents: list[tuple[LadderReference, Player]] = []
    row: AgentRating | None = None
    try:
        listed = [r.name for r in settings.references]
        for i, reference in enumerate(references):  # seeded by its place in the whole ladder
            place = listed.index(reference.name) if reference.name in listed else i
            player = reference_player(reference, seed=settings.seed + 1 + place,
                                      timeout_s=settings.usi_timeout_s, device=device)  # fmt: skip
            opponents.append((reference, player))
        calibrated = calibration.ratings()
        warn_uncalibrated([(r.name, p.name) for r, p in opponents], calibration)
        played = [r for r, p in opponents if p.name in calibrated]
        check_engines(calibration, engine_identities(played, settings.usi_timeout_s))
        if not refit:
            _refuse_without_scale(opponents, shared_path, calibrated)
        with LadderRegistry(shared_path) as shared, EloRegistry(home.elo_database) as elo:
            label = _claim_folder(home)
            record_dir = home.games_of_ladder(label)
            session = f"{home.root.name}/{record_dir.name}"
            elo.ensure_player(agent.name, agent.kind, path=agent.path, step=agent.step)
            for _, player in opponents:
                elo.ensure_player(player.name, player.kind, path=player.path)

            def record(reference: LadderReference, result: GameResult) -> None:
                shared.add_game(session, agent.name, result)
                elo.record_result(agent.name, result)
                if on_game is not None:
                    on_game(reference, result)

            rungs = climb(agent, opponents, settings, record_dir, record, on_rung)
            results, agent_rating = _rate(shared, agent.name, rungs, refit, calibrated)
            if agent_rating is not None:
                row = AgentRating(session, agent.name, agent_rating.rating, agent_rating.low,
                                  agent_rating.high, agent_rating.games, str(shared_path),
                                  time.time())  # fmt: skip
                shared.add_agent_rating(row)
        if row is not None:
            record_agent_rating(home.elo_database, row)
    finally:
        for _, player in opponents:
            player.close()
    plot = plot_ladder(
        home.ladder_plot(label),
        f"Ladder: {agent.name} ({session})",
        [PlottedRating(r.name, r.rating.rating, r.rating.low, r.rating.high)
         for r in results if r.rating is not None],
        None if agent_rating is None else PlottedRating(
            agent.name, agent_rating.rating, agent_rating.low, agent_rating.high),
    )  # fmt: skip
    return LadderResult(agent.name, Path(agent.path), home.root, session, tuple(results),
                        agent_rating, shared_path, record_dir, plot, refit,
                        calibration.path)  # fmt: skip


def _refuse_without_scale(
    opponents: Sequence[tuple[LadderReference, Player]],
    registry: Path,
    calibrated: Mapping[str, StoredRating],
) -> None:
    """A ladder with neither random nor a calibrated or rated reference would rate nothing
    (checked before anything is written)."""
    names = {player.name for _, player in opponents}
    if ANCHOR in names or names & set(calibrated):
        return
    if registry.is_file():
        with LadderRegistry(registry) as shared:
            if names & set(shared.stored()):
                return
    raise ConfigError(
        f"none of the references is random, calibrated or has a rating in {registry}: there "
        "is no scale to rate on (add the random reference)"
    )


def _claim_folder(home: RunLayout) -> str:
    """The label (the time, suffixed when taken) of a new `games/ladder-<label>` folder."""
    now = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        label = now if attempt == 1 else f"{now}-{attempt}"
        try:
            home.games_of_ladder(label).mkdir(parents=True)
        except FileExistsError:
            continue
        return label
    raise ConfigError(f"cannot create a new ladder folder under {home.games}")


def _rate(
    shared: LadderRegistry,
    agent: str,
    rungs: Sequence[Rung],
    refit: bool,
    calibrated: Mapping[str, StoredRating],
) -> tuple[list[RungResult], FittedRating | None]:
    """Refit (when asked), rate the agent, store new uncalibrated references; each rung's
    rating. Calibrated references keep their ratings: nothing here stores or fits them."""
    labels = {rung.player: rung.reference.name for rung in rungs}
    fixed = {name: c.rating for name, c in calibrated.items()}
    refitted: set[str] = set()
    if refit:
        fitted = refit_references(shared.games(), shared.references() - set(calibrated), fixed)
        stored = shared.stored()
        shared.store(
            StoredRating(name, labels.get(name, stored[name].label if name in stored else name),
                         f.rating, f.low, f.high, f.games, "refit")
            for name, f in fitted.items()
        )  # fmt: skip
        refitted = set(fitted)
    stored = {name: s for name, s in shared.stored().items() if name not in calibrated}
    known = {ANCHOR: ANCHOR_RATING} | {name: s.rating for name, s in stored.items()} | fixed
    triples = [(agent, rung.player, SCORES[game.outcome]) for rung in rungs
               for game in rung.games if game.reason not in ENGINE_FAILURES]  # fmt: skip
    agent_rating, new = rate_agent(triples, agent, known)
    failed = {rung.player for rung in rungs if rung.engine_failures}
    shared.store(StoredRating(name, labels[name], f.rating, f.low, f.high, f.games, "joint")
                 for name, f in new.items() if name not in failed)  # fmt: skip
    stored = {name: s for name, s in shared.stored().items() if name not in calibrated}
    stored |= {name: c for name, c in calibrated.items() if name != ANCHOR}
    _warn_if_out_of_order([(rung.reference.name, stored[rung.player]) for rung in rungs
                           if rung.player in stored])  # fmt: skip
    results = []
    for rung in rungs:
        name = rung.player
        if name == ANCHOR:
            games = sum(1 for a, b, _ in triples if ANCHOR in (a, b))
            rating = StoredRating(ANCHOR, rung.reference.name, ANCHOR_RATING, ANCHOR_RATING,
                                  ANCHOR_RATING, games, "anchor")  # fmt: skip
            results.append(RungResult(rung, rating, "anchor"))
        elif name in calibrated:
            s = calibrated[name]
            results.append(RungResult(rung, s, f"calibrated, {s.games} games"))
        elif name in stored:
            s = stored[name]
            how = "refit" if name in refitted else "new" if name in new else "stored"
            results.append(RungResult(rung, s, f"{how}, {s.games} games"))
        else:
            results.append(RungResult(rung, None, _why_unrated(rung, agent_rating is None)))
    return results, agent_rating


def _warn_if_out_of_order(rated: Sequence[tuple[str, StoredRating]]) -> None:
    """The skipping rule needs the references weakest first: say so where the stored ratings
    clearly (intervals apart) contradict the listed order."""
    for (weaker, low), (stronger, high) in zip(rated, rated[1:], strict=False):
        if high.high < low.low:
            _log.warning(
                "ladder.references should be listed weakest first, but %r (Elo %.0f) is clearly "
                "weaker than %r (Elo %.0f) listed before it", stronger, high.rating, weaker,
                low.rating,
            )  # fmt: skip


def _why_unrated(rung: Rung, no_scale: bool) -> str:
    if not rung.games:
        return "unrated (not played)"
    if rung.engine_failures:
        return "unrated (engine failed)"
    if no_scale:
        return "unrated (no scale)"
    return "unrated (one-sided)"
