"""Paths a run is given or finds (issue 25): every folder flag checked before any work, nothing written
through a symbolic link the run did not make, no flag taken for another, no number that only fails after a
whole build."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from packager import cli, commands, outdir
from packager.archive import safe_extract
from packager.errors import ArchiveError
from packager.outdir import LOCK_NAME, OWNER_NAME, OutputFolderError, claim
from packager.pipeline import upstream_view
from packager.sources import FetchedSource
from tests.hostile.helpers import ROOT, clean_error, pack

UP_FRONT_S = 90  # a refusal before any work takes seconds; main ran the whole pack (minutes) instead


def quick_pack(*args: str, cwd: Path = ROOT, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A pack expected to stop before any work: one that runs on instead fails by its timeout. ``home``:
    its $HOME (a pack that wrongly accepted ``--out ~`` must not fill the real one)."""
    env = {"HOME": str(home)} if home else None
    return pack(*args, "--backends", "onnx", "--no-latency", timeout=UP_FRONT_S, cwd=cwd, env=env)


def listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@contextlib.contextmanager
def read_only_folder(tmp_path: Path):
    """A read-only file system (a tmpfs mounted ro): root ignores permission bits, so this is the only
    honest read-only folder here. Skips where mounting is not allowed."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


# ---------------------------------------------------------------- folder flags, before any work


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--out", "--cache-dir", "--fixtures", "--recipes"])
def test_an_empty_folder_flag_is_refused(tmp_path: Path, flag: str) -> None:
    """``--out ""`` was ``Path("")``, the working directory: zips, goldens and report landed there."""
    proc = quick_pack("minilm", flag, "", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "an empty path" in proc.stderr and "Traceback" not in proc.stderr
    assert listing(tmp_path) == set()


@pytest.mark.slow
@pytest.mark.parametrize(("flag", "value", "what"), [
    ("--out", ".", "is the working directory"),
    ("--out", "..", "is your home folder"),
    ("--out", "/", "is a folder above the working directory"),
    ("--cache-dir", ".", "is the working directory"),
    ("--out", "~", "is your home folder"),
])  # fmt: skip
def test_the_working_directory_or_home_is_no_output_folder(
    tmp_path: Path, flag: str, value: str, what: str
) -> None:
    work, home = tmp_path / "home" / "work", tmp_path / "home"
    work.mkdir(parents=True)
    proc = quick_pack("minilm", flag, value.replace("~", str(home)), cwd=work, home=home)
    clean_error(proc, 2, what, "a folder of its own")
    assert listing(home) == {"work"}


@pytest.mark.slow
def test_cache_dir_and_fixtures_that_are_files_are_refused_before_any_work(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("mine")
    out = tmp_path / "out"
    proc = quick_pack("minilm", "--out", str(out), "--cache-dir", str(file))
    clean_error(proc, 2, f"--cache-dir {file}: is an existing file", "accepted: a writable folder")
    proc = quick_pack("minilm", "--out", str(out), "--fixtures", str(file / "fx"))
    clean_error(proc, 2, f"--fixtures {file / 'fx'}: a parent of it is a file")
    proc = quick_pack("minilm", "--out", str(out), "--fixtures", "/proc/weightpack-fixtures")
    clean_error(proc, 2, "--fixtures /proc/weightpack-fixtures: cannot be written")
    proc = quick_pack("minilm", "--out", str(out), "--cache-dir", "/proc/weightpack-cache")
    clean_error(proc, 2, "--cache-dir /proc/weightpack-cache: cannot be written")
    assert file.read_text() == "mine" and not out.exists()


def test_folder_checks_leave_nothing_behind_and_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(OutputFolderError, match=r"--fixtures .*: a parent of it is a file"):
        (tmp_path / "f").write_text("x")
        outdir.check_folder(tmp_path / "f" / "a" / "b", "--fixtures", create=False)
    outdir.check_folder(tmp_path / "new" / "deeper", "--fixtures", create=False)
    assert not (tmp_path / "new").exists()  # probed above it, not created
    outdir.check_folder(tmp_path / "made", "--cache-dir")
    assert listing(tmp_path) == {"f", "made"}  # the probe file is gone


def test_a_read_only_fixtures_or_cache_folder_is_refused(tmp_path: Path) -> None:
    with read_only_folder(tmp_path) as ro:
        for flag, create in (("--fixtures", False), ("--cache-dir", True), ("--out", True)):
            with pytest.raises(
                OutputFolderError, match=rf"{flag} .*: cannot be written \(read-only file system\)"
            ):
                outdir.check_folder(ro / "sub", flag, create=create)


@pytest.mark.slow
def test_a_read_only_fixtures_folder_is_refused_before_the_run(tmp_path: Path) -> None:
    with read_only_folder(tmp_path) as ro:
        proc = quick_pack("minilm", "--out", str(tmp_path / "out"), "--fixtures", str(ro))
        clean_error(proc, 2, "--fixtures", "read-only file system")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_missing_recipes_folder_is_refused(tmp_path: Path) -> None:
    proc = quick_pack("minilm", "--recipes", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "out"))
    clean_error(proc, 2, "--recipes", "no such folder")
    proc = pack("--list", "--recipes", str(tmp_path / "nonexistent"), timeout=UP_FRONT_S)
    clean_error(proc, 2, "no such folder")


# ---------------------------------------------------------------- links under --out


def test_a_planted_goldens_link_is_refused_and_nothing_lands_outside(tmp_path: Path) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.mkdir()
    (out / "goldens").symlink_to(victim)
    planted = pytest.raises(OutputFolderError, match=r"symbolic links that no pack run made \(goldens -> ")
    with planted, claim(out):
        pass
    assert listing(victim) == set()
    (out / "goldens").unlink()
    (out / "goldens").mkdir()
    (out / "goldens" / "inside").symlink_to(out / "goldens")  # stays inside --out: harmless
    with claim(out):
        pass


@pytest.mark.slow
def test_a_planted_goldens_link_stops_pack_before_any_work(tmp_path: Path) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.mkdir()
    (out / "goldens").symlink_to(victim)
    proc = quick_pack("minilm", "--out", str(out))
    clean_error(proc, 2, "goldens ->", "remove them")
    assert listing(victim) == set()


@pytest.mark.parametrize("name", [LOCK_NAME, OWNER_NAME])
def test_lock_files_that_are_links_are_refused_and_their_targets_untouched(tmp_path: Path, name: str) -> None:
    """The owner stamp was written through a planted ``.pack.lock.json`` link, over its target; a linked
    ``.pack.lock`` (filelock will not follow it) was an unexpected OSError (exit 1)."""
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("precious")
    (out / name).symlink_to(victim)
    with pytest.raises(OutputFolderError, match=rf"{name} is a symbolic link"), claim(out):
        pass
    assert victim.read_text() == "precious"
    (out / name).unlink()
    (out / name).symlink_to(out / name)  # a loop
    with pytest.raises(OutputFolderError, match=rf"{name} is a symbolic link"), claim(out):
        pass


def test_safe_extract_does_not_write_through_a_linked_parent(tmp_path: Path) -> None:
    zip_path = tmp_path / "good.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("config.json", "{}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "scratch").symlink_to(elsewhere)
    with pytest.raises(ArchiveError, match="is a symbolic link or not a directory"):
        safe_extract(zip_path, tmp_path / "scratch" / "package")
    assert listing(elsewhere) == set()
    assert [p.name for p in safe_extract(zip_path, tmp_path / "real" / "package")] == ["config.json"]


def test_a_stale_upstream_view_link_is_re_pointed(tmp_path: Path) -> None:
    source, out, evil = tmp_path / "source", tmp_path / "out", tmp_path / "evil.json"
    source.mkdir()
    for name in ("config.json", "weights.bin", "extra.txt"):
        (source / name).write_text(name)
    evil.write_text("attacker")
    files = [{"path": n, "size": 1, "sha256": "0"} for n in ("config.json", "weights.bin")]
    fetched = FetchedSource(source, {"files": files})
    view = upstream_view(fetched, out).path
    (view / "config.json").unlink()
    (view / "config.json").symlink_to(evil)  # planted (or left by a run over another source)
    again = upstream_view(fetched, out).path
    assert again == view and (view / "config.json").read_text() == "config.json"


# ---------------------------------------------------------------- flags and numbers


@pytest.mark.slow
def test_threads_beyond_any_machine_are_refused_up_front(tmp_path: Path) -> None:
    proc = quick_pack("minilm", "--threads", "99999999999999999999", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "above 4096" in proc.stderr and "at most 4096" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_no_flag_is_taken_for_an_abbreviation_of_another(capsys) -> None:
    """``--max-member 5`` was ``--max-members 5``; ``--hel`` was ``--help`` (exit 0), in every verb."""
    for argv in (["minilm", "--max-member", "5"], ["--hel"], *([v.name, "--hel"] for v in commands.VERBS)):
        with pytest.raises(SystemExit) as caught:
            cli.main(argv)
        assert caught.value.code == 2, argv
    assert "unrecognized arguments: --max-member 5" in capsys.readouterr().err


def test_every_argument_parser_refuses_abbreviations() -> None:
    """Each ``argparse.ArgumentParser(...)`` in packager/ passes ``allow_abbrev=False``."""
    missing = []
    for path in sorted((ROOT / "packager").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            if (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) in (
                "ArgumentParser",
                "Parser",
            ):
                flags = {k.arg: k.value for k in node.keywords}
                value = flags.get("allow_abbrev")
                if not (isinstance(value, ast.Constant) and value.value is False):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert missing == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "not a weightpack report (a JSON list"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"schema": "weightpack.report/v1", "packages": 5}', "not shaped like a weightpack report"),
        ("\udcff", "cannot be read"),
        ('"text"', "a JSON str"),
    ],
)
def test_pack_report_refuses_what_is_no_report(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    out = io.StringIO()
    with contextlib.redirect_stderr(out), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["report", str(path)])
    assert code == 2 and message in out.getvalue(), out.getvalue()
    assert "unexpected" not in out.getvalue()


def test_report_of_a_real_run_still_renders(minilm_pack_onnx: Path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["report", str(minilm_pack_onnx / "report.json")]) == 0
    assert json.loads((minilm_pack_onnx / "report.json").read_text())["family"] in out.getvalue()


def test_env_home_is_not_needed_for_the_checks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    os.makedirs(tmp_path / "home")
    outdir.check_folder(tmp_path / "cache", "--cache-dir")


def test_pack_report_refuses_what_is_no_regular_file_and_an_unwritable_out(
    tmp_path: Path, minilm_pack_onnx: Path
) -> None:
    """``pack report /dev/zero`` read until memory ran out; ``--out /proc/x.md`` was 'unexpected'."""
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    for argv, message in (
        (["report", str(tmp_path / "zero.json")], "no regular file"),
        (
            ["report", str(minilm_pack_onnx / "report.json"), "--out", "/proc/x.md"],
            "--out /proc/x.md: cannot",
        ),
    ):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(argv) == 2, err.getvalue()
        assert message in err.getvalue() and "unexpected" not in err.getvalue()
