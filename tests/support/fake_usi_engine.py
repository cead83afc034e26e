"""A deliberately misbehaving USI engine, for tests:
`python fake_usi_engine.py MODE [--pid-file PATH] [--marker PATH]`.

Modes: `hang` (never answers `go`), `crash` (exits on `go`), `illegal` (answers an illegal move),
`resign` (resigns at once), `slowstart` (never answers `usi`), `never_ready` (keeps reading but
never finishes the `usi` handshake, and exits when its input closes), `crash_once` (exits on `go`
if the `--marker` file does not exist yet, creating it; resigns otherwise), `exit_after_move`
(resigns, then exits: dead before the next game begins).

`--pid-file PATH` appends the engine's process id to PATH when it starts, so a test can count the
processes a match started.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main(mode: str, pid_file: str | None = None, marker: str | None = None) -> int:
    if pid_file is not None:
        with open(pid_file, "a", encoding="utf-8") as file:
            file.write(f"{os.getpid()}\n")
    out = sys.stdout
    for line in sys.stdin:
        command = line.strip()
        if command == "usi":
            if mode == "slowstart":
                time.sleep(3600)
            if mode == "never_ready":
                out.write(f"id name fake-{mode}\n")
                out.flush()
                continue
            out.write(f"id name fake-{mode}\nid author tests\nusiok\n")
        elif command == "isready":
            out.write("readyok\n")
        elif command.startswith("go"):
            if mode == "hang":
                time.sleep(3600)
            elif mode == "crash":
                sys.exit(7)
            elif mode == "crash_once" and marker is not None and not Path(marker).exists():
                Path(marker).touch()
                sys.exit(7)
            elif mode == "illegal":
                out.write("bestmove 5e5d\n")
            elif mode in ("resign", "crash_once", "exit_after_move"):
                out.write("bestmove resign\n")
                if mode == "exit_after_move":
                    out.flush()
                    return 7
        elif command == "quit":
            return 0
        out.flush()
    return 0


def _option(name: str) -> str | None:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], _option("--pid-file"), _option("--marker")))
