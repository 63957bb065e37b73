"""Every ``pack`` verb, registered in one place: :data:`VERBS`.

``pack FAMILY ...`` builds packages (:mod:`packager.cli`); ``pack VERB ...`` runs one of the verbs below.
Each verb's module provides ``main(argv: list[str]) -> int`` (an exit code) and builds its parser with
:func:`verb_parser`, so ``pack VERB --help`` shows plain text. ``pack --help`` lists every verb with its
one-line summary from here; adding a verb is one entry in :data:`VERBS` and a module of its own.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verb:
    """``pack NAME``: ``target`` is ``module:function`` taking argv and returning an exit code."""

    name: str
    target: str
    summary: str

    def load(self) -> Callable[[list[str]], int]:
        from backends.registry import load_object

        return load_object(self.target)


VERBS: tuple[Verb, ...] = (
    Verb(
        "verify-remote",
        "packager.publish.verify_remote:main",
        "check a registered package as a consumer would (download, md5, load, goldens)",
    ),
    Verb(
        "registry",
        "packager.registry.cli:main",
        "a local models registry on disk (serve, list): register, verify-remote and AutoModel against it",
    ),
    Verb(
        "compare",
        "packager.compare:main",
        "flag latency and parity regressions of a night against a window of nights (nights as a level)",
    ),
    Verb(
        "runs",
        "packager.compare.cli:runs_main",
        "measure every package of pack outputs k times, each run a fresh process, interleaved",
    ),
    Verb(
        "ab",
        "packager.compare.cli:ab_main",
        "did my change make it slower? baseline and candidate runs alternated AB BA ..., compared in pairs",
    ),
    Verb(
        "calibrate",
        "packager.compare.calibrate:main",
        "false alarms per nightly and planted-slowdown detection of the nightly's comparison, measured here",
    ),
    Verb(
        "history",
        "packager.history:main",
        "one static HTML page per family: every row night after night, verdicts marked, parity drift",
    ),
    Verb(
        "inspect",
        "packager.inspect_cmd:main",
        "a model's inputs and outputs (ONNX, TorchScript, state dict, HF) and the [inputs] for a recipe",
    ),
    Verb(
        "report",
        "packager.report_cmd:main",
        "render one report.json, or several side by side, as Markdown",
    ),
)


def find(name: str) -> Verb | None:
    """The verb called ``name``, or None (then ``name`` is a family)."""
    return next((v for v in VERBS if v.name == name), None)


def verbs_help() -> str:
    """The verb list ``pack --help`` shows under its description: one line each."""
    width = max(len(v.name) for v in VERBS) + 2
    lines = [f"  {v.name:<{width}}{v.summary}" for v in VERBS]
    return "subcommands (pack SUBCOMMAND --help for each):\n" + "\n".join(lines)


def verb_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``pack NAME``: the module docstring ``doc`` as plain text (first paragraph as the
    description, the rest after the options), each paragraph wrapped to the terminal."""
    text = plain_text(doc or "")
    head, _, rest = text.partition("\n\n")
    return Parser(
        prog=f"pack {name}",
        description=head,
        epilog=rest or None,
        formatter_class=ParagraphFormatter,
        allow_abbrev=False,  # an abbreviation silently taken for another flag is worse than an error
    )


class Parser(argparse.ArgumentParser):
    """argparse's parser, except that a usage error of a command line holding ``--json`` also prints one
    JSON document on stdout (a script reading it gets one on every path, a refused flag included)."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        self._json = "--json" in (sys.argv[1:] if args is None else list(args))
        return super().parse_known_args(args, namespace)

    def error(self, message: str):  # type: ignore[no-untyped-def]
        if getattr(self, "_json", False):
            doc = {"passed": False, "error": f"{self.prog}: {message}", "error_type": "UsageError"}
            print(json.dumps({**doc, "exit_code": 2}))
        super().error(message)


class ParagraphFormatter(argparse.HelpFormatter):
    """Rewraps each paragraph of the description and epilog to the terminal, keeping blank lines between
    them (argparse's default runs every paragraph into one)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
        return "\n\n".join(
            textwrap.fill(p, width, initial_indent=indent, subsequent_indent=indent) for p in paragraphs
        )


_ROLE = re.compile(r":(?:func|class|mod|data|meth|attr|obj|exc):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_EMPHASIS = re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")


def plain_text(rst: str) -> str:
    """A docstring as a terminal shows it best: reST roles and ``literals`` unwrapped, *emphasis* plain."""
    text = textwrap.dedent(rst).strip()
    text = _ROLE.sub(r"\1", text)
    text = _LITERAL.sub(r"\1", text)
    return _EMPHASIS.sub(r"\1", text)
