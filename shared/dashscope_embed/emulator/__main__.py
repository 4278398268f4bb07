"""Run the emulator: ``python -m dashscope_embed.emulator --port 8123``."""

from __future__ import annotations

import sys

from dashscope_embed.emulator._cli import main

if __name__ == "__main__":
    sys.exit(main())
