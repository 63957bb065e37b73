"""``pack history NIGHTS... --out DIR``: one static HTML page per family, a history a team would rather look
at than read.

Each NIGHT is a night folder of scripts/nightly.sh (runs/<stamp>) or any folder of run files (a night of
pack calibrate's pool). Per family the page (DIR/<family>.html, with DIR/index.html listing the families)
shows every latency row night after night: the night's level (geometric mean of its runs' medians, on the
row's clock), the interval its comparison gave it against the window, the window's level with the
threshold band around it, and every night's verdict marked (a regression as a red ▲); then the parity
error's drift against the tolerance; and a table of the nights with links to each night's report.md and
compare.md. Verdicts are the nightly's own where it recorded them (<label>.compare.json), otherwise the
same comparison made here (the nights before, --window of them, regressed ones left out unless
accepted). The page needs no server and fetches nothing: open it from disk.

Exit codes: 0 written, 2 bad input.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from packager.errors import EXIT_OK, UsageError


def build_parser():
    from packager.commands import verb_parser
    from packager.compare.cli import add_threshold_arguments

    p = verb_parser("history", __doc__)
    p.add_argument("nights", type=Path, nargs="+", metavar="NIGHT", help="night folders, oldest first")
    p.add_argument("--out", type=Path, default=Path("history"), help="where the pages go (./history)")
    p.add_argument("--window", type=int, default=5, help="earlier nights a night is compared with (5)")
    add_threshold_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from packager import atomic
    from packager.compare.cli import thresholds
    from packager.history.collect import build, read_nights
    from packager.history.page import index, render

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.window < 1:
        raise UsageError(f"--window must be >= 1, got {args.window}")
    t = thresholds(args)
    families = [
        build(name, nights, t, args.window) for name, nights in sorted(read_nights(args.nights).items())
    ]
    pages = {}
    for family in families:
        page = args.out / f"{family.name}.html"
        atomic.write_text(page, render(family, args.out))
        pages[family.name] = page.name
        print(f"{family.name}: {len(family.nights)} nights, {len(family.rows)} rows -> {page}")
    atomic.write_text(args.out / "index.html", index(families, pages))
    return EXIT_OK
