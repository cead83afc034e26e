"""A deliberately misbehaving USI engine, for tests: `python fake_usi_engine.py MODE`.

Modes: `hang` (never answers `go`), `crash` (exits on `go`), `illegal` (answers an illegal move),
`resign` (resigns at once), `slowstart` (never answers `usi`).
"""

from __future__ import annotations

import sys
import time


def main(mode: str) -> None:
    out = sys.stdout
    for line in sys.stdin:
        command = line.strip()
        if command == "usi":
            if mode == "slowstart":
                time.sleep(3600)
            out.write(f"id name fake-{mode}\nid author tests\nusiok\n")
        elif command == "isready":
            out.write("readyok\n")
        elif command.startswith("go"):
            if mode == "hang":
                time.sleep(3600)
            elif mode == "crash":
                sys.exit(7)
            elif mode == "illegal":
                out.write("bestmove 5e5d\n")
            elif mode == "resign":
                out.write("bestmove resign\n")
        elif command == "quit":
            return
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
