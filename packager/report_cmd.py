"""``pack report A/report.json [B/report.json ...] [--labels a,b] [--out FILE]``: reports side by side.

Renders Markdown (:func:`bench.side_by_side.render_comparison`): verdicts and environments, latency p50
with its 95 % CI and p99 per (variant, backend, device, batch), each p50 as a ratio of the first
report's, and parity per output. With one report it prints that report's own Markdown.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from packager import atomic
from packager.commands import verb_parser
from packager.errors import EXIT_OK, UsageError, WriteError, disk_cause


def main(argv: list[str]) -> int:
    from bench.markdown import render_markdown
    from bench.side_by_side import render_comparison

    parser = verb_parser("report", __doc__)
    parser.add_argument("reports", nargs="+", type=Path, help="report.json files (or folders holding one)")
    parser.add_argument("--labels", help="comma-separated column labels (default: R1, R2, ...)")
    parser.add_argument("--out", type=Path, help="write the Markdown here instead of stdout")
    args = parser.parse_args(argv)
    reports = [_load(p) for p in args.reports]
    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    if labels is not None and len(labels) != len(reports):
        raise UsageError(f"--labels: {len(labels)} labels for {len(reports)} reports")
    try:
        text = render_markdown(reports[0]) if len(reports) == 1 else render_comparison(reports, labels)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # the schema said report, the content does not: a hand-edited or truncated file, not our bug
        names = ", ".join(str(p) for p in args.reports)
        raise UsageError(
            f"{names}: not shaped like a weightpack report ({type(exc).__name__}: {exc}; "
            "accepted: a report.json as pack wrote it)"
        ) from None
    if args.out:
        try:
            atomic.write_text(args.out, text)  # never half a file under the name asked for
            args.out.chmod(0o644)  # a document to share, not the atomic temporary's 0600
        except OSError as exc:
            if disk_cause(exc) is not None:
                raise WriteError.of(exc, args.out.parent) from None
            raise UsageError(f"--out {args.out}: cannot be written ({exc.strerror or exc})") from None
    else:
        print(text)
    return EXIT_OK


MAX_REPORT_BYTES = 256 << 20
"""Far more than any report pack writes (a few hundred KB): a bigger file, or no regular file at all
(``/dev/zero``), is refused before it is read."""


def _load(path: Path) -> dict:
    if path.is_dir():
        path = path / "report.json"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_REPORT_BYTES:
            what = "a regular file" if stat.S_ISREG(info.st_mode) else "no regular file"
            raise UsageError(f"{path}: {what} of {info.st_size} bytes (accepted: a report.json pack wrote)")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such report") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc})") from None
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply to be a report (accepted: a report.json)") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if not str(schema or "").startswith("weightpack.report/"):
        found = f"schema {schema!r}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise UsageError(f"{path}: not a weightpack report ({found}; accepted: a report.json pack wrote)")
    return data
