"""A scriptable misbehaving USI engine for the client tests: `python fake_engine.py MODE`.

good          a minimal correct engine (answers 2g2f once option Depth is 3, else 7g7f)
chatty        `good`, writing megabytes to stderr (a client that does not drain it deadlocks)
no_options    `good` without advertising any option
hang_go       never answers `go`, not even after `stop`
stop_go       answers `go` only after `stop`
crash_go      writes to stderr and exits with code 7 on `go`
no_usiok      never finishes the `usi` handshake
ignore_quit   ignores `quit` (and SIGTERM is its only way out)
bad_bestmove  answers `go` with a malformed move
"""

from __future__ import annotations

import sys


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(mode: str) -> int:
    depth = "1"
    if mode == "chatty":
        sys.stderr.write(("noise " * 100 + "\n") * 4000)  # ~2.4 MB, far above a pipe buffer
        sys.stderr.flush()
    for raw in sys.stdin:
        words = raw.split()
        if not words:
            continue
        command = words[0]
        if command == "usi":
            say("id name Fake Engine")
            say("id author nobody")
            if mode == "no_usiok":
                continue
            if mode != "no_options":
                say("option name Depth type spin default 1 min 1 max 9")
                say("option name Book File type string default none")
            say("usiok")
        elif command == "setoption" and len(words) >= 5 and words[2] == "Depth":
            depth = words[4]
        elif command == "isready":
            say("readyok")
        elif command == "go":
            if mode == "chatty":
                sys.stderr.write(("busy " * 100 + "\n") * 4000)
                sys.stderr.flush()
            if mode == "crash_go":
                sys.stderr.write("boom: fake engine crashed\n")
                sys.stderr.flush()
                return 7
            if mode in ("hang_go", "stop_go"):
                continue
            if mode == "bad_bestmove":
                say("bestmove 7g7f7")
                continue
            say("info depth 1 score cp 10 pv 7g7f")
            say(f"bestmove {'2g2f' if depth == '3' else '7g7f'}")
        elif command == "stop" and mode == "stop_go":
            say("bestmove 7g7f")
        elif command == "quit" and mode != "ignore_quit":
            return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
