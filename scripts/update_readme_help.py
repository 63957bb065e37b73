"""Rewrite docs/cli.md's ``pack --help`` block from the parser (tests/test_cli.py checks they match).

Run after adding or changing a ``pack`` flag or verb: ``python scripts/update_readme_help.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = "```text\n$ COLUMNS=100 pack --help\n"


def main() -> int:
    os.environ["COLUMNS"] = "100"
    sys.path.insert(0, str(ROOT))
    from packager.cli import build_parser

    readme = ROOT / "docs" / "cli.md"
    text = readme.read_text(encoding="utf-8")
    if FENCE not in text:
        print(f"{readme}: no block starting with {FENCE!r}", file=sys.stderr)
        return 2
    head, rest = text.split(FENCE, 1)
    tail = rest.split("```", 1)[1]
    readme.write_text(head + FENCE + build_parser().format_help() + "```" + tail, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
