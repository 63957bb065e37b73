"""The ``pack`` command line as users meet it: text reaches the terminal as written, each failure class has
its documented exit code, the summary lists every package attempted, and the help lists every verb.

Runs a real ``pack`` on MTCNN's P-net (weights shipped by facenet-pytorch, ~1 s per run) with small recipes
written per test; the terminal tests run ``pack`` as a subprocess writing to a real file.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import socket
import subprocess
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from packager.cli import main
from packager.commands import VERBS
from tests.backends.helpers import mtcnn_dir
from tests.packs import pack_in_process, pack_popen, pack_process

pytestmark = pytest.mark.skipif(
    mtcnn_dir() is None, reason="facenet-pytorch is not installed (scripts/setup.sh installs it --no-deps)"
)

ROOT = Path(__file__).resolve().parents[1]

RECIPE = """
[family]
name = "{family}"
architecture = "mtcnn-{family}"
task = "object-detection"
default_variant = "pnet"

[variants.pnet]
source = "{source}"

[backends.torch]
factory = "mtcnn_nets:build"
factory_kwargs = {{ net = "{{variant}}" }}
{extra}

[inputs]
kind = "tensor"
tensors = [{{ name = "image", shape = [1, 3, 24, 24], dtype = "float32", low = -1.0, high = 1.0 }}]

[parity]
reference_class = "{reference}"
"""

MODELS = """
from mtcnn_nets import MTCNNNet


class Shifted(MTCNNNet):
    '''A reference that disagrees with the package: every output is off by one.'''

    def infer(self, inputs):
        return {k: v + 1.0 for k, v in super().infer(inputs).items()}
"""


def write_recipe(
    root: Path,
    family: str,
    *,
    extra: str = "",
    source: str = "pkg://facenet_pytorch/data/pnet.pt",
    reference: str = "mtcnn_nets:MTCNNNet",
) -> Path:
    recipes = root / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / f"{family}.toml").write_text(
        RECIPE.format(family=family, extra=extra, source=source, reference=reference)
    )
    (root / "wp_cli_models.py").write_text(textwrap.dedent(MODELS))
    return recipes


def pack_args(root: Path, family: str, *more: str) -> list[str]:
    return [
        family,
        "--recipes", str(root / "recipes"),
        "--out", str(root / "out" / family),
        "--cache-dir", str(root / "cache"),
        "--devices", "cpu",
        "--no-latency",
        *more,
    ]  # fmt: skip


def terminal_pack(root: Path, args: list[str]) -> subprocess.Popen:
    """``pack ARGS`` in a child process whose stderr is a real file (``root/stderr.txt``), a 70-column
    colour terminal (no NO_COLOR: tests.hermetic keeps the caller's out)."""
    stderr = open(root / "stderr.txt", "w")  # noqa: SIM115 - the child holds it; read back by the caller
    return pack_popen(
        *args,
        cwd=root,
        paths=(ROOT / "recipes", root),
        env={"COLUMNS": "70", "TERM": "xterm-256color"},
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def run_pack(root: Path, args: list[str]) -> tuple[int, str, str]:
    """Run ``pack`` in a terminal to the end; returns (exit code, stdout, stderr as the terminal got it)."""
    proc = terminal_pack(root, args)
    stdout, _ = proc.communicate(timeout=300)
    return proc.returncode, stdout, (root / "stderr.txt").read_text()


TRT = "[backends.trt]\n"
needs_no_tensorrt = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here"
)


# -- 1. text reaches the terminal as written -----------------------------------------------------------


@dataclass(frozen=True)
class TrtRun:
    """``pack mt`` with ``[backends.trt]`` and no tensorrt, run as a user would: once in a terminal
    (stderr a real file), once with ``--json``."""

    root: Path
    code: int
    terminal: str
    json_code: int
    json: dict


@pytest.fixture(scope="module")
def trt_run(tmp_path_factory: pytest.TempPathFactory) -> TrtRun:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here: the trt package would build")
    root = tmp_path_factory.mktemp("trt-run")
    write_recipe(root, "mt", extra=TRT)
    with pytest.MonkeyPatch.context() as patch:  # the recipe's module, as the terminal run has it
        patch.syspath_prepend(str(root))
        json_run = pack_in_process(*pack_args(root, "mt", "--json", "--out", str(root / "json")))
    code, _, terminal = run_pack(root, pack_args(root, "mt"))
    return TrtRun(root, code, terminal, json_run.returncode, json.loads(json_run.stdout))


@pytest.mark.slow
def test_bracketed_messages_reach_the_terminal_as_in_json(trt_run: TrtRun) -> None:
    [failure] = trt_run.json["failures"]
    assert "pip install 'weightpack[gpu]'" in failure["message"]
    assert failure["message"] in trt_run.terminal, trt_run.terminal


def test_rich_ui_prints_markup_and_emoji_codes_verbatim(tmp_path: Path) -> None:
    from rich.console import Console

    from packager.ui import RichUI

    path = tmp_path / "terminal.txt"
    texts = [
        "[inputs] table of recipe [bold]x[/bold]",
        "a list ['a', 'b'] and :thumbs_up: and [/]",
        "pip install 'weightpack[gpu]' — a long line that a 40-column terminal would otherwise wrap",
    ]
    with open(path, "w") as handle:
        ui = RichUI(Console(file=handle, width=40, force_terminal=False))
        with ui.stage(texts[0]):
            pass
        ui.info(texts[1])
        ui.warn(texts[2])
        ui.download_progress("[model].bin", 5, 10)
        ui.download_progress("[model].bin", 10, 10)
    written = path.read_text()
    for text in texts:
        assert text in written, written


# -- 2. exit codes, one test per failure class, through the CLI ----------------------------------------


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_exit_0_when_everything_passed(workspace: Path) -> None:
    write_recipe(workspace, "ok")
    assert main(pack_args(workspace, "ok", "--quiet")) == 0


def test_exit_1_when_a_check_failed(workspace: Path) -> None:
    write_recipe(workspace, "bad", reference="wp_cli_models:Shifted")
    assert main(pack_args(workspace, "bad", "--quiet")) == 1


def test_exit_2_on_bad_input(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_recipe(workspace, "mt")
    assert main(pack_args(workspace, "mt", "--variants", "nope", "--quiet")) == 2
    err = capsys.readouterr().err
    assert "'nope' is not a variant" in err and "Traceback" not in err


@needs_no_tensorrt
def test_exit_3_when_an_extra_is_missing(workspace: Path) -> None:
    write_recipe(workspace, "mt", extra=TRT)
    assert main(pack_args(workspace, "mt", "--quiet")) == 3
    report = json.loads((workspace / "out" / "mt" / "report.json").read_text())
    [failure] = report["failures"]
    assert failure["backend"] == "trt" and failure["exit_code"] == 3


def test_exit_3_when_cuda_is_asked_for_and_absent(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present here: asking for it is not an error")
    write_recipe(workspace, "mt")
    assert main([*pack_args(workspace, "mt", "--quiet"), "--devices", "cuda"]) == 3
    assert "cuda" in capsys.readouterr().err.lower()


@pytest.mark.slow
def test_exit_130_when_interrupted(tmp_path: Path) -> None:
    """SIGINT while ``pack`` waits on a download that never comes: exit 130, a one-line message."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = threading.Event()
    conns = []

    def accept() -> None:
        conn, _ = listener.accept()
        conns.append(conn)
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    write_recipe(tmp_path, "mt", source=f"http://127.0.0.1:{port}/pnet.pt")
    proc = terminal_pack(tmp_path, pack_args(tmp_path, "mt"))
    try:
        assert accepted.wait(120), "pack never connected"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        listener.close()
        for conn in conns:
            conn.close()
    err = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


# -- 3. every package attempted is in the summary and in report.md --------------------------------------


@pytest.mark.slow
def test_summary_and_report_list_failed_packages_with_a_reason(trt_run: TrtRun) -> None:
    assert trt_run.code == trt_run.json_code == 3
    assert [(a["backend"], a["passed"]) for a in trt_run.json["attempts"]] == [
        ("torch", True),
        ("trt", False),
    ]
    table = trt_run.terminal[trt_run.terminal.index("mt: FAILED") :]
    rows = [line for line in table.splitlines() if "pnet" in line and "│" in line]
    assert any("torch" in r and "yes" in r for r in rows), table
    [trt] = [r for r in rows if "trt" in r]
    assert "NO (1)" in trt, table
    assert "(1) pnet/trt: missing extra: pip install 'weightpack[gpu]' (tensorrt)" in table, table
    md = (trt_run.root / "out" / "mt" / "report.md").read_text()
    section = md[md.index("## Packages") :].split("\n## ")[0]
    trt_rows = [line for line in section.splitlines() if "| trt |" in line]
    assert trt_rows and "missing extra" in trt_rows[0], section


# -- 4. help: every verb listed, each verb's help plain text; 6. the README shows the same ---------------


def test_pack_help_lists_every_verb_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="0"):
        main(["--help"])
    out = capsys.readouterr().out
    section = out.split("subcommands (pack SUBCOMMAND --help for each):\n", 1)[1]
    listed = re.findall(r"^  (\S+) +(.+)$", section.split("\n\n")[0], re.M)
    assert listed == [(v.name, v.summary) for v in VERBS]
    assert {"verify-remote", "compare", "report"} <= {name for name, _ in listed}


@pytest.mark.parametrize("verb", [v.name for v in VERBS])
def test_each_verb_help_is_plain_text(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="0"):
        main([verb, "--help"])
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pack {verb} ")
    assert "`" not in out and not re.search(r":(func|class|mod|data|meth):", out), out


def test_docs_show_pack_help_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/cli.md holds ``COLUMNS=100 pack --help`` as printed; it and README.md have a row per verb."""
    from packager.cli import build_parser

    monkeypatch.setenv("COLUMNS", "100")
    cli = (ROOT / "docs" / "cli.md").read_text()
    fence = "```text\n$ COLUMNS=100 pack --help\n"
    assert fence in cli, "docs/cli.md lost its `pack --help` block"
    block = cli.split(fence, 1)[1].split("```", 1)[0]
    assert block == build_parser().format_help(), (
        "docs/cli.md is stale: run python scripts/update_readme_help.py"
    )
    for page in (cli, (ROOT / "README.md").read_text()):
        rows = re.findall(r"^\| `pack ([a-z-]+)[^`]*` \|", page, re.M)
        assert rows == [v.name for v in VERBS]


def test_the_readme_is_a_front_door() -> None:
    """README.md says what weightpack is for, the two commands and where to read on, in under 150 lines;
    every page it links exists."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    assert "scripts/demo.sh" in readme and "scripts/test.sh" in readme
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links and all((ROOT / link).is_file() for link in links), links


# -- shell completion (argcomplete, the `completion` extra) -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("line", "expected"),
    [("pack ", {"verify-remote", "compare", "report", "minilm", "mtcnn"}), ("pack --var", {"--variants"})],
)
def test_shell_completion_offers_verbs_families_and_flags(tmp_path: Path, line: str, expected: set) -> None:
    pytest.importorskip("argcomplete", reason="shell completion needs the completion extra (argcomplete)")
    out = tmp_path / "completions.txt"
    env = {
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
    }
    proc = pack_process(cwd=tmp_path, env=env, timeout=120)  # the shell calls pack, which answers and exits
    assert proc.returncode == 0, proc.stderr
    offered = {word.strip() for word in out.read_text().split("\n") if word.strip()}
    assert expected <= offered, offered


@pytest.mark.parametrize("argv", [["comapre", "a.json", "b.json"], ["verify-remot"]])
def test_a_mistyped_verb_is_named_with_the_likely_one(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"'{argv[0]}' is neither a subcommand nor a family" in err
    assert "did you mean: " in err and ("compare" in err or "verify-remote" in err), err
