"""`keisei play` driven through its stdin, as a person at a terminal would."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cshogi
import cshogi.KIF
import pytest

from keisei.cli import main
from keisei.shogi import ShogiGame
from keisei.usi.play import kif_text, refusal
from tests.usi.helpers import REPO, engine_env, keisei_command


def play(run_dir: Path, kif: Path, stdin: str, *flags: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        keisei_command(
            "play", "--checkpoint", str(run_dir), "--playouts", "4", "--kif", str(kif), *flags
        ),
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=engine_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_moves_refusals_undo_and_resign(run_dir: Path, tmp_path: Path) -> None:
    kif = tmp_path / "game.kifu"
    script = ["7g7f", "7g7e", "hello", "5a4b", "P*5e", "undo", "2g2f", "help", "resign"]
    out = play(run_dir, kif, "\n".join(script) + "\n", "--black").stdout
    assert "Refused: 7g7e: there is no piece of yours on 7g" in out
    assert "Refused: 'hello' is not a move in USI notation" in out
    assert "Refused: 5a4b: there is no piece of yours on 5a" in out
    assert "Refused: P*5e: you have no P in hand" in out
    replies = [line.split()[2] for line in out.splitlines() if line.startswith("Keisei plays")]
    assert len(replies) == 2  # one reply to 7g7f (undone), one to 2g2f
    assert f"Undone: 7g7f {replies[0]}" in out
    assert "You resign after 2 moves: Keisei wins." in out
    # The board was drawn with the last move marked and both hands shown.
    assert "Black in hand: -" in out and "White in hand: -" in out and "P*" in out
    # The KIF holds exactly the moves left after the undo, and the resignation.
    text = kif.read_text(encoding="utf-8")
    parsed = cshogi.KIF.Parser.parse_str(text)
    assert [cshogi.move_to_usi(m) for m in parsed.moves] == ["2g2f", replies[1]]
    assert "投了" in text and "後手の勝ち" in text and "end=resign winner=white" in text
    assert parsed.names == ["You", "Keisei (step_000000010)"]


def test_playing_white_and_leaving_saves_an_unfinished_game(run_dir: Path, tmp_path: Path) -> None:
    kif = tmp_path / "white.kifu"
    out = play(run_dir, kif, "undo\n7g7f\n", "--white").stdout  # then end of input
    assert "You play white" in out and "Nothing to undo." in out
    assert "Refused: 7g7f: there is no piece of yours on 7g" in out
    assert "Game abandoned after 1 moves." in out
    parsed = cshogi.KIF.Parser.parse_str(kif.read_text(encoding="utf-8"))
    assert len(parsed.moves) == 1 and parsed.names == ["Keisei (step_000000010)", "You"]
    assert "中断" in kif.read_text(encoding="utf-8")


def test_refusal_reasons() -> None:
    game = ShogiGame.from_usi_position("startpos moves 7g7f 3c3d 8h2b+")
    assert "no piece of yours on 2b" in refusal(game, "2b3a")  # Black's bishop, White to move
    assert "not a legal move here" in refusal(game, "4a4c")  # own gold, not a gold move
    assert "not a move in USI notation" in refusal(game, "3a")
    checked = ShogiGame("4k4/9/4R4/9/9/9/9/9/4K4 w - 1")
    assert "(your king is in check)" in refusal(checked, "5a5b")


def test_kif_text_marks_the_winner_of_a_resignation() -> None:
    game = ShogiGame.from_usi_position("startpos moves 7g7f")
    text = kif_text(game, "A", "B", resigned="white")
    assert text.rstrip().endswith("まで1手で先手の勝ち") and "   2 投了" in text
    assert kif_text(game, "A", "B", resigned=None).rstrip().endswith("中断")


@pytest.mark.parametrize("flags", [["--playouts", "-1"], ["--black", "--white"]])
def test_bad_arguments_are_refused(
    run_dir: Path, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused by the argument parser, before any game: its command line, in this process.
    with pytest.raises(SystemExit) as exited:
        main(["play", "--checkpoint", str(run_dir), *flags])
    assert exited.value.code == 2 and "usage" in capsys.readouterr().err
