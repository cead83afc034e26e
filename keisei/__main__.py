"""`python -m keisei ...` is the `keisei` command (what torchrun and `--nproc-per-node` start)."""

from keisei.cli import main

raise SystemExit(main())
