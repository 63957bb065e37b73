"""The ``pack`` command line.

``pack FAMILY [--variants a,b] [--backends hf,onnx] [--devices cpu,cuda] [--out DIR]`` builds and verifies
packages; ``pack --list`` shows families. Other verbs (``pack SUBCOMMAND ...``) are registered in
:data:`packager.commands.VERBS`, one entry and a module of their own each.

Exit codes: 0 all passed, 1 a check failed, 2 bad input, 3 environment (disk, limits, network, missing
extra, no CUDA), 130 interrupted, 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from packager import __version__, commands, interrupts, limits, side_files
from packager.arguments import comma_list, thread_count
from packager.cache import default_cache_dir  # re-exported: verify-remote and inspect read it from here
from packager.cluster import cli as cluster_cli
from packager.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, UsageError, WeightpackError
from packager.outdir import path_argument
from packager.recipes import default_recipe_dirs, find_recipes, load_recipe, resolve_family
from packager.redact import redact_argv

# Steps that run after a pack whose checks all passed (publish, fixtures, ...). Each module provides
# ``add_arguments(parser)`` and ``after_pack(args, report: dict, out_dir: Path, ui) -> int | None``, and may
# provide ``check_arguments(args)``, run before packing so a bad flag fails fast. A step does nothing unless
# its flags were given. They never run when a check failed: that is the gate. Publishing runs first, so
# fixtures can point at the uploaded zips.
PACK_EXTENSIONS: list[str] = ["packager.publish.cli", "packager.fixtures"]


USAGE = """pack FAMILY [options]
       pack --list [--json]
       pack SUBCOMMAND [arguments]   (pack SUBCOMMAND --help)"""

EXIT_CODES = (
    "exit codes: 0 all passed, 1 a check failed, 2 bad input, 3 environment (disk, file-size limits,\n"
    "network, a missing extra, no CUDA), 130 interrupted, 143 terminated (SIGTERM); when several\n"
    "packages fail, the highest code wins."
)


MAX_COUNT = 4096
"""The most --threads or --jobs accepted: more than any machine's cores, far less than would overflow the
C int torch and onnxruntime take (a huge value used to fail only after a whole build)."""


def _positive_int(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number from 1 to {MAX_COUNT}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = commands.Parser(
        prog="pack",
        usage=USAGE,
        description="Build, verify and report deployable packages for a model family.\n\n"
        + commands.verbs_help(),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # '--max-member 5' must not be taken as --max-members
    )
    family = parser.add_argument("family", nargs="?", help="model family (a recipe name, see --list)")
    family.completer = _complete_family  # type: ignore[attr-defined]  # read by argcomplete
    parser.add_argument(
        "--variants", type=comma_list, help="comma-separated variants (default: the recipe's default)"
    )
    parser.add_argument(
        "--backends", type=comma_list, help="comma-separated backends (default: all in the recipe)"
    )
    parser.add_argument(
        "--devices", type=comma_list, help="cpu, cuda, cuda:N (default: cpu, plus cuda:0 if present)"
    )
    parser.add_argument("--out", type=path_argument, help="output folder (default: ./out/FAMILY)")
    parser.add_argument(
        "--recipes", type=path_argument, action="append", help="recipe folder (repeatable; searched first)"
    )
    parser.add_argument(
        "--cache-dir", type=path_argument, help="download cache (default: ~/.cache/weightpack)"
    )
    parser.add_argument(
        "--no-latency", action="store_true", help="skip latency measurement (parity still runs)"
    )
    parser.add_argument(
        "--threads",
        type=thread_count,
        metavar="N",
        help="torch and onnxruntime intra-op threads (default: [bench] threads, else 1)",
    )
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="export and zip up to N packages at once in separate processes; checks run after them, one "
        "package at a time (default: one per CPU, as far as memory allows)",
    )
    parser.add_argument(
        "--reverify",
        action="store_true",
        help="check every package again (default: keep the checks of a package, device and environment "
        "that already passed, and reuse reference outputs)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print where the run spent its time, stage by stage (also written to OUT/profile.json)",
    )
    parser.add_argument("--list", action="store_true", help="list families and their variants, then exit")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error (default: one line)"
    )
    parser.add_argument("--version", action="version", version=f"weightpack {__version__}")
    parser.add_argument(
        "--wait", action="store_true", help="if another pack run holds --out, wait for it (default: refuse)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="refuse what is otherwise warned about (unpinned hf:// sources)"
    )
    limits.add_arguments(parser)
    cluster_cli.add_arguments(parser)
    for module in _extensions():
        module.add_arguments(parser)
    return parser


def _extensions() -> list:
    import importlib

    return [importlib.import_module(name) for name in PACK_EXTENSIONS]


def _complete_family(prefix: str = "", **_: object) -> list[str]:
    """What may come first: a verb or a family from the default recipe folders."""
    families = {name for d in default_recipe_dirs() for name in find_recipes(d)}
    return sorted(n for n in {v.name for v in commands.VERBS} | families if n.startswith(prefix))


def _shell_completion() -> None:
    """Answer the shell's tab completion and exit, when the shell asks (``_ARGCOMPLETE`` set) and
    argcomplete (the ``completion`` extra) is installed; otherwise return at once."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(build_parser())


def main(argv: Sequence[str] | None = None) -> int:
    return interrupts.run(lambda: _main(argv), as_program=argv is None)


def _main(argv: Sequence[str] | None) -> int:
    if argv is None:
        _shell_completion()
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = commands.find(argv[0]) if argv else None
    if verb is not None:
        side_files.contain(default_cache_dir())
        return _guard(lambda: verb.load()(argv[1:]), json_errors="--json" in argv, debug="--debug" in argv)
    typo = _mistyped_verb(argv)
    if typo:
        print(f"pack: error: {typo}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args = build_parser().parse_args(argv)
    return _guard(lambda: _pack(args), json_errors=args.json, debug=args.debug)


def _mistyped_verb(argv: list[str]) -> str | None:
    """When the first word is no family (of the default recipe folders) but close to a verb, the message
    saying so; argparse would otherwise complain about the verb's arguments, or the recipe search about a
    missing family."""
    import difflib

    if not argv or argv[0].startswith("-") or "--recipes" in argv:
        return None
    word = argv[0]
    close = difflib.get_close_matches(word, [v.name for v in commands.VERBS], n=2, cutoff=0.75)
    if not close or any(word in find_recipes(d) for d in default_recipe_dirs()):
        return None
    return f"'{word}' is neither a subcommand nor a family; did you mean: {', '.join(close)}?"


class _AfterSummary(Exception):
    """An error after the run's JSON summary was made (publishing, fixtures): ``--json`` prints the summary
    and the error as one document."""

    def __init__(self, error: Exception, summary: dict) -> None:
        super().__init__(str(error))
        self.error, self.summary = error, summary


def _guard(body: Callable[[], int], json_errors: bool, debug: bool = False) -> int:
    """Run ``body``; turn weightpack's typed errors into a message and the documented exit code. Anything
    else (a bug here, or in code a recipe names) is one line and exit 1; ``--debug`` shows its traceback.
    With ``--json`` stdout gets exactly one JSON document on every path (the body's own, or this one)."""
    summary: dict = {}
    try:
        return body()
    except KeyboardInterrupt as stop:  # Ctrl-C (130) or SIGTERM (143): the same cleanup ran
        code, message, kind = interrupts.exit_code(stop), interrupts.describe(stop), type(stop).__name__
        print(f"pack: {message}; finished zips and reports are intact, re-run to complete", file=sys.stderr)
    except Exception as caught:
        exc = caught.error if isinstance(caught, _AfterSummary) else caught
        summary = caught.summary if isinstance(caught, _AfterSummary) else {}
        if isinstance(exc, WeightpackError):
            code, message = getattr(exc, "exit_code", EXIT_BAD_INPUT), str(exc)
        elif debug:
            raise exc from None
        else:
            code = EXIT_CHECK_FAILED
            message = f"unexpected {type(exc).__name__}: {exc} (re-run with --debug for the traceback)"
        kind = type(exc).__name__
        print(f"pack: error: {message}", file=sys.stderr)
    if json_errors:
        doc = {**summary, "passed": False, "error": message, "error_type": kind, "exit_code": code}
        print(json.dumps(doc, indent=2 if summary else None))
    return code


def recipe_dirs(args: argparse.Namespace) -> list[Path]:
    """``--recipes`` folders (each must exist: a misspelt one would silently fall back to the built-in
    recipes), then the default ones."""
    for folder in args.recipes or []:
        if not Path(folder).is_dir():
            accepted = "a folder holding FAMILY.toml files"
            raise UsageError(f"--recipes {folder}: no such folder (accepted: {accepted})")
    return [*(args.recipes or []), *default_recipe_dirs()]


def _pack(args: argparse.Namespace) -> int:
    from packager import atomic, outdir
    from packager import outcome as run_summary
    from packager.pipeline import PackOptions, run_pack, select
    from packager.settings import RunSettings
    from packager.ui import make_ui

    dirs = recipe_dirs(args)
    if args.list:
        return _list(dirs, args.json)
    if not args.family:
        raise UsageError("a FAMILY is required (see pack --list), e.g. pack minilm --variants l6")
    recipe = resolve_family(args.family, dirs)
    variants, backends = select(recipe, args.variants, args.backends)
    out_dir = (args.out or Path("out") / recipe.family).resolve()
    cache_dir = (args.cache_dir or default_cache_dir()).resolve()
    outdir.refuse_shared_folder(out_dir, "--out", f"out/{recipe.family}")
    outdir.refuse_shared_folder(cache_dir, "--cache-dir", "~/.cache/weightpack")
    outdir.check_folder(cache_dir, "--cache-dir")  # like --out: a file or a read-only folder is exit 2 now
    side_files.contain(cache_dir)  # before any library that writes on its own is imported
    for module in _extensions():
        if hasattr(module, "check_arguments"):
            module.check_arguments(args)
    cluster = cluster_cli.executor(args)  # --ray: connected now, so a wrong address fails before any work
    settings = RunSettings.of(
        devices=args.devices,
        threads=args.threads,
        limits=limits.limits_from(args),
        measure_latency=not args.no_latency,
        resolve=cluster is None,  # with --ray each node resolves the devices on itself
    )
    options = PackOptions(
        variants=variants,
        backends=backends,
        out_dir=out_dir,
        cache_dir=cache_dir,
        settings=settings,
        reverify=args.reverify,
        jobs=args.jobs,
        extra_meta={"argv": redact_argv(["pack", *sys.argv[1:]]) if args else []},
        wait=args.wait,
        strict=args.strict,
        cluster=cluster,
    )
    ui = make_ui(args.quiet or args.json)
    _quiet_libraries()
    profile = None
    if args.profile:
        from packager.profiling import Profile, ProfilingUI, process_age_s

        profile = Profile(startup_s=process_age_s())
        ui = ProfilingUI(ui, profile)
    # the pack's claim on --out holds until the command ends: the steps after it (upload, register, the
    # publish state, fixtures, profile.json) write there too, and a second run must not start meanwhile
    with outdir.held_until_end():
        report = run_pack(recipe, options, ui)
        data = report.to_dict()
        summary = run_summary.as_json(data, options.out_dir) if args.json else None
        if summary is None and not args.quiet:
            run_summary.print_table(data, options.out_dir)
        if profile is not None:
            profile.finish()
            atomic.write_json(options.out_dir / "profile.json", profile.to_dict())
            print(profile.render(), file=sys.stderr)
        try:
            code = (
                run_summary.exit_code(data)
                if not data["passed"]
                else _after_pack(args, data, options.out_dir, ui)
            )
        except Exception as exc:
            if summary is None:
                raise
            raise _AfterSummary(exc, summary) from exc
        if summary is not None:  # printed last: a publish failure goes into this one document
            print(json.dumps(summary, indent=2))
        return code


def _after_pack(args: argparse.Namespace, data: dict, out_dir: Path, ui: object) -> int:
    """The extension steps of a run whose checks all passed (publish, then fixtures)."""
    for module in _extensions():
        code = module.after_pack(args, data, out_dir, ui)
        if code:
            return code
    return EXIT_OK


def _quiet_libraries() -> None:
    """Our own progress display replaces transformers' per-load bars and advisory logging.

    Through the environment, which both libraries read when first imported, so a run that loads no model
    (every package and check reused) never imports transformers (seconds of start-up) just to quiet it."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # what transformers' disable_progress_bar sets
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:  # already imported (pack called in-process): set it directly
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def _list(dirs: list[Path], as_json: bool) -> int:
    families = {}
    for directory in reversed(dirs):  # earlier folders win
        families.update(find_recipes(directory))
    listing = []
    for name, path in sorted(families.items()):
        recipe = load_recipe(path)
        listing.append(
            {
                "family": name,
                "architecture": recipe.architecture,
                "task": recipe.task,
                "variants": list(recipe.variants),
                "default_variant": recipe.default_variant,
                "backends": list(recipe.backends),
                "recipe": str(path),
            }
        )
    if as_json:
        print(json.dumps(listing, indent=2))
    else:
        for item in listing:
            print(
                f"{item['family']:<16} {item['task']:<14} variants: {', '.join(item['variants'])} "
                f"(default {item['default_variant']}); backends: {', '.join(item['backends'])}"
            )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
