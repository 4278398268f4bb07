"""Run the command line: ``python -m dashscope_embed.cli embed in.txt -o out.npy``."""

from __future__ import annotations

from dashscope_embed.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
