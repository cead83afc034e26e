"""`keisei play`: a game against the agent in the terminal.

The human types moves in USI notation (`7g7f`, `8h2b+`, `P*5e`), `undo` (takes back their last
move and the agent's reply), `resign`, `help` or `quit`. A bad move is refused with the reason and
the game goes on. When the game ends (or input ends), it is saved as KIF (UTF-8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, TextIO

from rich.console import Console
from rich.markup import escape

from keisei.log import get_logger
from keisei.shogi import COLOR_NAMES, IllegalMoveError, ShogiGame
from keisei.usi.agent import Agent
from keisei.usi.board_view import render_board

_logger = get_logger("usi.play")
_USI_MOVE: Final = re.compile(r"[1-9][a-i][1-9][a-i]\+?|[PLNSGBR]\*[1-9][a-i]")
HELP: Final = (
    "Type a move in USI notation: 7g7f (from 7g to 7f), 8h2b+ (and promote), P*5e (drop a pawn "
    "on 5e). Commands: undo, resign, help, quit."
)
_KIF_COLOR: Final = {"black": "先手", "white": "後手"}
_HAND_LETTERS: Final = "PLNSGBR"  # cshogi's order of pieces in hand


@dataclass
class PlayOutcome:
    """How the terminal game ended: the game itself, who resigned (if anyone), where the KIF is."""

    game: ShogiGame
    resigned: str | None
    kif_path: Path
    abandoned: bool = False


def default_kif_path() -> Path:
    return Path(f"keisei-{datetime.now():%Y%m%d-%H%M%S}.kifu")


def refusal(game: ShogiGame, text: str) -> str:
    """Why `text` cannot be played here (for a move `push_usi` refused)."""
    if not _USI_MOVE.fullmatch(text):
        return f"{text!r} is not a move in USI notation. {HELP}"
    board = game.board_copy()
    if text[1] == "*":
        hand = board.pieces_in_hand[game.turn]
        if not hand[_HAND_LETTERS.index(text[0])]:
            return f"{text}: you have no {text[0]} in hand"
    else:
        square = (int(text[0]) - 1) * 9 + "abcdefghi".index(text[1])
        piece = board.pieces[square]
        if piece == 0 or (piece >= 16) != (game.turn == 1):
            return f"{text}: there is no piece of yours on {text[:2]}"
    reason = f"{text} is not a legal move here"
    if game.is_check():
        reason += " (your king is in check)"
    return reason


def kif_text(game: ShogiGame, black: str, white: str, resigned: str | None) -> str:
    """The game as KIF; a resignation replaces the record's 'interrupted' ending."""
    text = game.to_kif(black, white)
    if resigned is None or game.result is not None:
        return text
    lines = text.rstrip("\n").split("\n")[:-2]
    winner = "white" if resigned == "black" else "black"
    plies = game.ply
    if lines and lines[0].endswith(": unfinished"):
        lines[0] = lines[0].replace("unfinished", f"end=resign winner={winner} plies={plies}")
    lines += [f"{plies + 1:>4} 投了", f"まで{plies}手で{_KIF_COLOR[winner]}の勝ち"]
    return "\n".join(lines) + "\n"


class PlaySession:
    """One game between a human on `input`/`console` and `agent`, the human playing `human`."""

    def __init__(
        self,
        agent: Agent,
        *,
        human: int,
        input_stream: TextIO,
        console: Console,
        kif_path: Path,
        playouts: int,
    ) -> None:
        self.agent = agent
        self.human = human
        self.input = input_stream
        self.console = console
        self.kif_path = kif_path
        self.playouts = playouts
        self.game = ShogiGame(name="play")

    def run(self) -> PlayOutcome:
        game = self.game
        you = COLOR_NAMES[self.human]
        self.console.print(f"You play {you}. {HELP}", markup=False)
        resigned: str | None = None
        abandoned = False
        shown = -1  # the board is drawn again only when a move was played or undone
        while not game.is_over:
            if shown != game.ply:
                self._show()
                shown = game.ply
            if game.turn != self.human:
                self._agent_move()
                continue
            command = self._ask()
            if command is None or command == "quit":
                abandoned = True
                break
            if command == "resign":
                resigned = you
                break
            self._human_command(command)
        self._show()
        self.console.print(self._verdict(resigned, abandoned), markup=False)
        black, white = self._names()
        self.kif_path.write_text(kif_text(game, black, white, resigned), encoding="utf-8")
        self.console.print(f"Game saved as KIF: {self.kif_path}", markup=False)
        return PlayOutcome(game, resigned, self.kif_path, abandoned)

    def _names(self) -> tuple[str, str]:
        agent = f"Keisei ({self.agent.name})"
        return ("You", agent) if self.human == 0 else (agent, "You")

    def _show(self) -> None:
        moves = self.game.moves
        last = moves[-1] if moves else None
        self.console.print(render_board(self.game.board_copy(), last, viewer=self.human))
        if moves:
            self.console.print(f"move {self.game.ply}: {self.game.usi_moves[-1]}", markup=False)

    def _ask(self) -> str | None:
        while True:
            self.console.print(f"your move ({COLOR_NAMES[self.human]})> ", end="", markup=False)
            line = self.input.readline()
            if not line:
                self.console.print()
                return None
            command = line.strip()
            if command:
                return command

    def _human_command(self, command: str) -> None:
        game = self.game
        if command in ("help", "?"):
            self.console.print(HELP, markup=False)
        elif command == "undo":
            if game.ply < 2:
                self.console.print("Nothing to undo.", markup=False)
            else:
                undone = game.usi_moves[-2:]
                game.pop()
                game.pop()
                self.console.print(f"Undone: {' '.join(undone)}", markup=False)
        else:
            try:
                game.push_usi(command)
            except IllegalMoveError:
                self.console.print(f"[yellow]Refused:[/] {escape(refusal(game, command))}")

    def _agent_move(self) -> None:
        result = self.agent.choose(self.game, self.playouts)
        self.game.push_move(result.move)
        self.console.print(
            f"Keisei plays {result.usi} (value {result.value:+.2f}, {result.playouts} playouts)",
            markup=False,
        )

    def _verdict(self, resigned: str | None, abandoned: bool) -> str:
        game = self.game
        if abandoned:
            return f"Game abandoned after {game.ply} moves."
        if resigned is not None:
            return f"You resign after {game.ply} moves: Keisei wins."
        result = game.result
        assert result is not None
        if result.winner is None:
            return f"Draw ({result.reason}) after {result.plies} moves."
        who = "You win" if result.winner == COLOR_NAMES[self.human] else "Keisei wins"
        return f"{who} by {result.reason} after {result.plies} moves."
