"""Every Keisei setting, in one place.

Each default is stated once, here, in the pydantic models. `configs/default.yaml` lists the same
defaults for people to read and copy (a test keeps it in step with these models). Loading goes
YAML file → `--set section.key=value` overrides → validation; any problem raises `ConfigError`
naming the key path and the offending value, before any work starts.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

PositiveInt = Annotated[int, Field(strict=True, gt=0)]
"""A whole number > 0; `true` or `2.5` are errors, not silently converted."""


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False), BeforeValidator(_not_bool)]
Fraction = Annotated[float, Field(ge=0, le=1), BeforeValidator(_not_bool)]

__all__ = [
    "CallbacksConfig",
    "CheckpointConfig",
    "Config",
    "ConfigError",
    "DistributedConfig",
    "check_world_size",
    "add_extra_callbacks",
    "EnvConfig",
    "EvaluationConfig",
    "LadderCalibrationConfig",
    "LadderConfig",
    "LadderReference",
    "ExtraCallback",
    "LoggingConfig",
    "ModelConfig",
    "PPOConfig",
    "SelfPlayConfig",
    "TrainingConfig",
    "config_hash",
    "dump_config",
    "load_config",
]


class ConfigError(ValueError):
    """A configuration problem, naming the key path and the bad value."""


class _Section(BaseModel):
    """Base for every section: unknown keys and silent type coercion are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=False)


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(name: str) -> str:
    """A device name torch knows: auto, cpu, cuda, cuda:N, mps."""
    if not _DEVICE.fullmatch(name):
        raise ValueError("expected auto, cpu, cuda, cuda:N or mps")
    return name


OPPONENT_KINDS = ("random", "greedy", "checkpoint:PATH", "usi:COMMAND")


def parse_opponent_spec(spec: str) -> tuple[str, str]:
    """(`random`|`greedy`|`checkpoint`|`usi`, argument) of an opponent spec; ValueError if
    it is none of `random`, `greedy`, `checkpoint:PATH`, `usi:COMMAND`."""
    if spec in ("random", "greedy"):
        return spec, ""
    kind, sep, argument = spec.partition(":")
    if sep and kind in ("checkpoint", "usi") and argument.strip():
        return kind, argument.strip()
    raise ValueError(f"unknown opponent {spec!r}: expected one of {', '.join(OPPONENT_KINDS)}")


def check_opponent_spec(spec: str) -> str:
    """A well-formed opponent whose program exists: a `usi:` command must be an executable, a
    `checkpoint:` path a directory (its manifest is checked when a run is planned)."""
    kind, argument = parse_opponent_spec(spec)
    if kind == "usi":
        try:
            program = shlex.split(argument)[0]
        except (ValueError, IndexError):
            raise ValueError(f"{spec!r}: cannot split the command line") from None
        found = shutil.which(program)
        if found is None:
            raise ValueError(f"{spec!r}: {program!r} is not an executable program")
    elif kind == "checkpoint" and not Path(argument).exists():
        raise ValueError(f"{spec!r}: {argument} does not exist")
    return spec


class TrainingConfig(_Section):
    total_timesteps: PositiveInt = 512_000
    """Environment steps (plies over all games) to train for."""
    steps_per_epoch: PositiveInt = 2048
    """Environment steps collected between two PPO updates; callbacks run after each epoch."""
    checkpoint_interval_timesteps: PositiveInt = 102_400
    """Save a checkpoint each time the step counter reaches a multiple of this."""
    seed: int = 0
    device: Annotated[str, AfterValidator(check_device)] = "auto"
    """`auto` (CUDA when available, else CPU), `cpu`, `cuda`, `cuda:1`, `mps`. Whether the
    device exists here is checked when a run is planned."""


class EnvConfig(_Section):
    num_envs: PositiveInt = 32
    """Self-play games stepped together (one batched forward pass per ply)."""
    max_plies: PositiveInt = 512
    """A game reaching this many plies is a draw."""
    declaration: bool = True
    """Entering-king declaration (27-point rule) wins."""


class ModelConfig(_Section):
    blocks: PositiveInt = 2
    channels: PositiveInt = 32
    squeeze_excitation: bool = False
    value_hidden: PositiveInt = 64


def _off_read_as_false(value: Any) -> Any:
    """YAML reads an unquoted `off` (`--set ppo.amp=off`) as false."""
    return "off" if value is False else value


class PPOConfig(_Section):
    learning_rate: PositiveFloat = 3e-4
    lr_schedule: Literal["constant", "linear"] = "constant"
    """`linear` decays the learning rate to zero over `training.total_timesteps`."""
    gamma: Fraction = 0.99
    """Discount per own move."""
    gae_lambda: Fraction = 0.95
    clip_coef: PositiveFloat = 0.2
    value_coef: PositiveFloat = 0.5
    entropy_coef: Annotated[float, Field(ge=0)] = 0.01
    max_grad_norm: PositiveFloat = 0.5
    update_epochs: PositiveInt = 4
    minibatch_size: PositiveInt = 256
    normalize_advantages: bool = True
    target_kl: PositiveFloat | None = None
    """Stop an update's epochs early once the approximate KL passes this."""
    amp: Annotated[Literal["auto", "off", "bf16", "fp16"], BeforeValidator(_off_read_as_false)] = (
        "auto"
    )
    """Mixed precision of the network, in the update and in every batched inference (self-play,
    past opponents, evaluation): `auto` is bf16 where the device runs it fast (a CUDA device with
    bf16, a CPU with AMX or AVX-512 BF16) and float32 elsewhere; `off` is float32; `bf16`
    anywhere; `fp16` on CUDA only (float32 elsewhere, with a warning). Weights, losses and the
    optimizer stay float32."""
    compile: bool = False
    """Run the network through `torch.compile`."""


class SelfPlayConfig(_Section):
    past_opponent_share: Fraction = 0.2
    """Share of each rank's games (`env.num_envs`) the learner plays against a frozen past
    checkpoint of this run instead of itself; only the learner's moves are trained on."""
    past_opponents: PositiveInt = 3
    """The opponent is drawn (uniformly) from this many newest checkpoints of the run, again
    each time the step reaches a multiple of `training.checkpoint_interval_timesteps`."""
    playouts: Annotated[int, Field(strict=True, ge=0)] = 0
    """Search-improved self-play: the learner's moves come from a Gumbel root search with this
    many playouts (2 to 32 is its range), batched across the games, and the policy learns the
    search's improved policy (`policy_target`); 0 is plain PPO, moves sampled from the policy."""
    considered: Annotated[int, Field(strict=True, ge=2)] = 16
    """Moves the Gumbel search considers at the root (sampled from the policy by Gumbel top-k)."""
    policy_target: Literal["improved", "improved+ppo"] = "improved"
    """With `playouts` > 0: the cross-entropy to the improved policy replaces the PPO surrogate
    (`improved`) or is added to it (`improved+ppo`)."""


class EvaluationConfig(_Section):
    enable_periodic_evaluation: bool = True
    evaluation_interval_timesteps: PositiveInt = 51_200
    num_games: PositiveInt = 20
    """Games per evaluation, shared out among the fixed opponents, the reference opponents and
    those from the pool."""
    opponents: list[Annotated[str, AfterValidator(check_opponent_spec)]] = Field(
        default_factory=lambda: ["random"]
    )
    """Fixed references played at every evaluation: random, greedy, checkpoint:PATH, usi:CMD."""
    reference_opponents: Annotated[int, Field(strict=True, ge=0)] = 2
    """Ladder references (`ladder.references`) also played at each evaluation: those just below
    and just above the agent's current rating (stored ratings in `ladder.sqlite` beside the runs;
    without any, the weakest one not yet passed in this run and the one below it), so the Elo
    curve keeps meaning once random is beaten. 0 turns them off; a reference whose program is
    not installed is skipped with a warning."""
    pool_size: Annotated[int, Field(strict=True, ge=0)] = 5
    """Past checkpoints of this run kept as opponents (the newest ones); 0 turns the pool off."""
    pool_opponents: Annotated[int, Field(strict=True, ge=0)] = 1
    """Pool members sampled as extra opponents at each evaluation."""
    pool_sampling: Literal["uniform", "nearest"] = "uniform"
    """Pick pool members uniformly, or those nearest the agent's current rating."""
    greedy: bool = True
    """The agent plays its most probable move (True) or samples from its policy."""
    playouts: Annotated[int, Field(strict=True, ge=0)] = 0
    """The agent's moves in evaluation games use PUCT search with this many playouts (batched
    across the games of a match; rated as `<checkpoint>+puct<N>`); 0 = the raw policy."""
    random_opening_plies: Annotated[int, Field(strict=True, ge=0)] = 4
    """Uniformly random plies before the players take over, so games differ."""
    max_plies: PositiveInt = 512
    elo_k: PositiveFloat = 16.0
    elo_anchor_rating: float = 0.0
    """Rating of the random player, the fixed anchor of the scale."""
    save_records: bool = True
    """Write each evaluation game as KIF and CSA under `<run>/games/`."""
    usi_byoyomi_ms: PositiveInt | None = 100
    usi_nodes: PositiveInt | None = None
    usi_timeout_s: PositiveFloat = 30.0
    """An engine that takes longer than this for a move loses the game."""
    usi_options: dict[str, str] = Field(default_factory=dict)
    """Options sent to `usi:` opponents (e.g. {"Skill Level": "0"})."""
    async_mode: bool = True
    """Evaluate in a background process on a snapshot of the weights; training does not wait."""
    async_policy: Literal["skip", "queue"] = "skip"
    """What a trigger does while an evaluation is still running: drop it, or queue it."""
    async_queue_size: PositiveInt = 2
    """With `queue`: evaluations that may wait behind the running one; more are dropped."""
    async_shutdown_timeout_s: PositiveFloat = 300.0
    """At the end of training, wait this long for running evaluations, then cancel them."""
    workers: PositiveInt = 1
    """Background evaluation processes."""
    worker_nice: Annotated[int, Field(strict=True, ge=0, le=19)] = 5
    """How much lower the CPU priority of those processes (and of the engines they start) is than
    training's: a niceness, 0 (the same) to 19. On a machine that other processes keep busy, a
    worker gets CPU time in proportion to 1.25**-nice of a training thread's (at 5: about a
    third), enough to finish each evaluation before the next is due; not the idle scheduling
    class, under which it would get none until training ends."""
    seed: int = 12345


def _opponent_syntax(spec: str) -> str:
    parse_opponent_spec(spec)
    return spec


FAIRY_STOCKFISH = "usi:/usr/games/fairy-stockfish"


class LadderReference(_Section):
    """One reference of `keisei ladder`: an opponent with the limits that set its strength."""

    name: Annotated[str, Field(min_length=1)]
    """How the ladder shows it (e.g. `fairy-stockfish skill -5 (nodes 10000)`); `--references`
    picks by it."""
    opponent: Annotated[str, AfterValidator(_opponent_syntax)]
    """random, greedy, checkpoint:PATH or usi:COMMAND. That its program exists is checked when a
    ladder plays it (naming this key), so a config naming an engine not installed here still
    trains."""
    options: dict[str, str] = Field(default_factory=dict)
    """USI options of a usi: opponent (e.g. {"Skill Level": "-10"})."""
    byoyomi_ms: PositiveInt | None = None
    """Milliseconds a move for a usi: opponent: its strength then depends on the machine's load.
    Left out: 100 for a usi: opponent without `nodes`, none otherwise (ignored for the others)."""
    nodes: PositiveInt | None = None
    """Nodes a move for a usi: opponent (unlike time, the same strength on every machine)."""

    @model_validator(mode="before")
    @classmethod
    def _time_limit_unless_nodes(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and "byoyomi_ms" not in data
            and data.get("nodes") is None
            and str(data.get("opponent", "")).startswith("usi:")
        ):
            return {**data, "byoyomi_ms": DEFAULT_REFERENCE_BYOYOMI_MS}
        return data

    @model_validator(mode="after")
    def _engine_settings_need_an_engine(self) -> LadderReference:
        if not self.opponent.startswith("usi:") and (self.options or self.nodes is not None):
            raise ValueError(f"{self.name!r}: options and nodes apply to usi: opponents only")
        return self


DEFAULT_REFERENCE_BYOYOMI_MS = 100
"""The time limit of a usi: reference given neither `byoyomi_ms` nor `nodes`."""
REFERENCE_NODES = 10_000
"""The node limit of the default ladder's Fairy-Stockfish references: what Fairy-Stockfish 11.1
searches here in a move at `byoyomi 100` on an idle machine (it thinks about 23 ms of the 100;
9,000 to 12,000 nodes at every Skill Level), so that each plays as the time-limited reference of
its Skill Level did when the machine was idle."""
REFERENCE_SKILLS = (-20, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5)
"""The Skill Levels of the default ladder's Fairy-Stockfish references: -20, -5, 0 and 5 as
before, with levels between them where neighbours were too far apart for their gap to be
measured in a few hundred games (from -5 up, one level is about 100-300 Elo at these nodes).
-10 and -7 are left out: at these nodes they play as -20 does (calibrated over 40 games each,
-10 was 17 Elo above -20, 95% interval -90 to +125; -7 52 above -10, -56 to +161), so
the -20 reference stands for them."""
BRIDGE_NODES = 700
"""Skill Level -20 held to this many nodes, between random and Skill Level -20 at
`REFERENCE_NODES` (which wins nearly every game against random): just above random."""


def _default_ladder() -> list[LadderReference]:
    def stockfish(level: int, nodes: int) -> LadderReference:
        return LadderReference(
            name=f"fairy-stockfish skill {level} (nodes {nodes})",
            opponent=FAIRY_STOCKFISH,
            options={"Skill Level": str(level)},
            nodes=nodes,
        )

    return [
        LadderReference(name="random", opponent="random"),
        stockfish(-20, BRIDGE_NODES),
        *(stockfish(level, REFERENCE_NODES) for level in REFERENCE_SKILLS),
    ]


class LadderCalibrationConfig(_Section):
    """`keisei ladder --recalibrate`: the references rated from games among themselves."""

    file: Path | None = None
    """The calibration the ladder reads and `--recalibrate` writes. None: the one `--recalibrate`
    wrote beside the runs (`<logging.model_dir>/ladder_calibration.json`) if there is one, else
    the one shipped with Keisei (`keisei/evaluation/ladder/calibration.json`)."""
    interval_elo: PositiveFloat = 100.0
    """Each pair of neighbouring references plays until the 95% interval of its gap is
    narrower than this (Elo), or `max_games`."""
    min_games: PositiveInt = 20
    """Games a pair plays before the interval may stop it."""
    max_games: PositiveInt = 1000
    """The most games a pair plays."""
    jobs: PositiveInt = 1
    """Pairs played at the same time, each in its own process."""


class LadderConfig(_Section):
    """`keisei ladder`: a checkpoint against fixed references, weakest first, on one Elo scale."""

    references: list[LadderReference] = Field(default_factory=_default_ladder)
    """In increasing strength: after one the agent clearly cannot reach, the rest are skipped.
    Their ratings come from the calibration (`calibration`); one not in it is rated from the
    agents' games and kept in `ladder.sqlite` beside the runs."""
    games_per_reference: PositiveInt = 20
    """Games at each reference (fewer when the sequential test decides early)."""
    min_games: PositiveInt = 6
    """Games at a reference before the sequential test may stop early."""
    confidence: Annotated[float, Field(gt=0, lt=1), BeforeValidator(_not_bool)] = 0.95
    """Of the score's interval: stop once it lies entirely above or below 50%."""
    greedy: bool = True
    """The agent plays its most probable move (True) or samples from its policy."""
    random_opening_plies: Annotated[int, Field(strict=True, ge=0)] = 4
    """Uniformly random plies before the players take over; each opening is played twice, the
    agent black in one game and white in the other."""
    max_plies: PositiveInt = 512
    early_stop: bool = True
    """Stop at a reference once the sequential test decides, and skip those above one the agent
    cannot reach. Off: every reference plays all `games_per_reference` games (the same games for
    every agent, as `benchmarks/bench_strength.py` compares them)."""
    usi_timeout_s: PositiveFloat = 30.0
    """An engine that takes longer than this for a move (beyond its byoyomi) loses the game."""
    seed: int = 0
    calibration: LadderCalibrationConfig = Field(default_factory=LadderCalibrationConfig)

    @model_validator(mode="after")
    def _names_unique(self) -> LadderConfig:
        names = [reference.name for reference in self.references]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"ladder reference names must differ: {', '.join(repeated)} repeated")
        return self


_CALLBACK_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def check_callback_target(target: str) -> str:
    """`package.module:ClassName`, with the module importable and the name defined in it."""
    if not _CALLBACK_TARGET.fullmatch(target):
        raise ValueError(f"{target!r} is not of the form package.module:ClassName")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{target!r}: cannot import module {module_name!r} ({exc})") from None
    except Exception as exc:
        raise ValueError(f"{target!r}: importing {module_name!r} failed: {exc!r}") from None
    if not isinstance(getattr(module, class_name, None), type):
        raise ValueError(f"{target!r}: module {module_name!r} defines no class {class_name!r}")
    return target


class ExtraCallback(_Section):
    """A callback of the user's, attached to `keisei train` from the config."""

    target: Annotated[str, AfterValidator(check_callback_target)]
    """`package.module:ClassName` of a `Callback` or `AsyncCallback` subclass."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for its constructor."""
    every: PositiveInt | None = None
    """Run its step hook every this many steps (None: the callback's own schedule)."""


def _extra_entry(value: Any) -> Any:
    return {"target": value} if isinstance(value, str) else value


class CallbacksConfig(_Section):
    max_consecutive_failures: PositiveInt = 5
    """A best-effort callback that fails this many times in a row is disabled."""
    extra: list[Annotated[ExtraCallback, BeforeValidator(_extra_entry)]] = Field(
        default_factory=list
    )
    """Callbacks of your own, each `package.module:ClassName` or {target, kwargs, every}; also
    `keisei train --callback package.module:ClassName`."""


class CheckpointConfig(_Section):
    keep_last: PositiveInt = 5
    """The newest checkpoints kept among those not rated (with `keep_rated`: all of them)."""
    keep_rated: bool = True
    """Never delete a rated checkpoint (with an `evaluation.json`, or a player in the run's Elo
    registry or the ladder database); `keep_last` counts the others. False: plain retention, and
    `keisei ratings` marks the players whose checkpoint is gone. Either way a checkpoint an
    evaluation waits for is kept until that evaluation has finished."""
    keep_every_timesteps: PositiveInt | None = None
    """Also keep every checkpoint whose step is a multiple of this (None: none extra)."""
    best_metric: str | None = None
    """Also keep the best checkpoint by this metric (e.g. `evaluation/elo`), higher is better."""
    async_save: bool = True
    """Write checkpoints in a background thread; the loop only waits for the copy to CPU."""
    max_failures: PositiveInt = 3
    """Checkpoint writes that may fail in a row (a full disk, ...) before training stops."""


class DistributedConfig(_Section):
    """Several ranks (`keisei train --nproc-per-node N`, or torchrun) training one agent."""

    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """`auto`: NCCL when the ranks train on CUDA, gloo on CPU."""
    timeout_s: PositiveFloat = 1800.0
    """How long a rank waits for the others: to join the group at start-up, and in any
    collective (a rank that vanished is usually noticed sooner, when its connection drops)."""


class LoggingConfig(_Section):
    model_dir: Path = Path("runs")
    """Root under which each run gets its own directory."""
    run_name: str | None = None
    """Name of the run directory; None picks a timestamped name."""
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    tensorboard: bool = True
    """Write TensorBoard event files into the run directory."""
    wandb: bool = False
    """Also log to Weights & Biases (needs `pip install wandb`)."""
    wandb_mode: Literal["offline", "online"] = "offline"
    wandb_project: str = "keisei"


class Config(_Section):
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    selfplay: SelfPlayConfig = Field(default_factory=SelfPlayConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    ladder: LadderConfig = Field(default_factory=LadderConfig)
    callbacks: CallbacksConfig = Field(default_factory=CallbacksConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        spe, envs = self.training.steps_per_epoch, self.env.num_envs
        if spe % envs:
            raise ValueError(
                f"training.steps_per_epoch = {spe} must be a multiple of env.num_envs = {envs} "
                "(each epoch plays the same number of plies in every game)"
            )
        if self.ppo.minibatch_size > spe:
            raise ValueError(
                f"ppo.minibatch_size = {self.ppo.minibatch_size} exceeds "
                f"training.steps_per_epoch = {spe}"
            )
        return self


def check_world_size(config: Config, world_size: int) -> None:
    """The global settings divide among `world_size` ranks: each rank plays
    `steps_per_epoch / world_size` plies per epoch (the same number in each of its `env.num_envs`
    games) and takes `minibatch_size / world_size` samples of each minibatch."""
    if world_size <= 1:
        return
    spe, envs = config.training.steps_per_epoch, config.env.num_envs
    minibatch = config.ppo.minibatch_size
    if spe % world_size:
        raise ConfigError(
            f"'training.steps_per_epoch' = {spe} does not divide among {world_size} ranks "
            "(it is global: each rank plays steps_per_epoch / ranks plies per epoch)"
        )
    if (spe // world_size) % envs:
        raise ConfigError(
            f"'env.num_envs' = {envs} (per rank) does not divide the {spe // world_size} plies "
            f"each of {world_size} ranks plays per epoch (training.steps_per_epoch = {spe})"
        )
    if minibatch % world_size:
        raise ConfigError(
            f"'ppo.minibatch_size' = {minibatch} does not divide among {world_size} ranks "
            "(it is global: each rank takes minibatch_size / ranks samples)"
        )


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "<root>"
        value = item.get("input")
        if not item["loc"]:
            lines.append(item["msg"].removeprefix("Value error, "))
        elif item["type"] == "extra_forbidden":
            lines.append(f"unknown key '{path}' (value {value!r})")
        else:
            lines.append(f"'{path}' = {value!r}: {item['msg'].removeprefix('Value error, ')}")
    return "invalid configuration: " + "; ".join(lines)


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {override!r} is not of the form section.key=value")
    parts = key.split(".")
    if any(not part for part in parts):
        raise ConfigError(f"override {override!r}: empty component in key path '{key}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{key}': cannot parse value {raw!r}: {exc}") from exc
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"override '{key}': '{where}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def config_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> Config:
    """Validate a mapping (plus overrides) into a `Config`."""
    merged = json.loads(json.dumps(data, default=str))
    for override in overrides:
        _apply_override(merged, override)
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML file (or the model defaults when `path` is None) and apply overrides."""
    data: Any = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"config file {path} is a directory, not a YAML file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not a text (YAML) file") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections at top level")
    return config_from_dict(data, overrides)


def add_extra_callbacks(config: Config, targets: Sequence[str]) -> Config:
    """`config` with `targets` (`package.module:ClassName`) appended to `callbacks.extra`."""
    if not targets:
        return config
    data = config_to_dict(config)
    data["callbacks"]["extra"] = [*data["callbacks"]["extra"], *targets]
    return config_from_dict(data)


def config_to_dict(config: Config) -> dict[str, Any]:
    return config.model_dump(mode="json")


def dump_config(config: Config, path: str | Path) -> None:
    """Write the effective configuration as YAML (what a run saves in its directory)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), "utf-8")


def config_hash(config: Config) -> str:
    """A stable sha256 of the effective configuration (stored in checkpoints)."""
    text = json.dumps(config_to_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
