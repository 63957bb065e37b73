"""One comma-list parser and one batch-size rule for every command line (issue 21): ``pack``, ``pack runs``,
compare's measure step, the nightly plugin and fan-out read ``a,b`` the same way, and batch sizes are held
to the recipe's own ``[bench] batch_sizes`` rule."""

from __future__ import annotations

import argparse

import pytest

from packager import cli
from packager.arguments import batch_sizes, comma_list
from packager.compare import measure
from packager.nightly import fanout


def test_comma_list_trims_and_drops_empty_items() -> None:
    assert comma_list(" tiny, small ,,") == ["tiny", "small"]


@pytest.mark.parametrize("value", ["", ",", " , "])
def test_comma_list_refuses_a_list_without_items(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="holds no item; expected a comma-separated list"):
        comma_list(value)


def test_batch_sizes_follow_the_recipes_rule() -> None:
    assert batch_sizes("1, 8") == (1, 8)
    with pytest.raises(
        argparse.ArgumentTypeError, match=r"0 is not positive \(accepted: positive integers\)"
    ):
        batch_sizes("1,0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"-4 is not positive"):
        batch_sizes("-4")
    with pytest.raises(argparse.ArgumentTypeError, match=r"is above 65536"):
        batch_sizes("99999999999999999999")
    with pytest.raises(argparse.ArgumentTypeError, match=r"'1,x' is not a comma-separated list of integers"):
        batch_sizes("1,x")


@pytest.mark.parametrize(
    ("parse", "argv", "message"),
    [
        (cli.build_parser().parse_args, ["minilm", "--variants", ","], "holds no item"),
        (measure.build_parser().parse_args, ["out", "--out", "x", "--batch-sizes", "0"], "0 is not positive"),
        (fanout.main, ["--out", "x", "--families", " , "], "holds no item"),
    ],
)
def test_every_command_line_refuses_the_same_bad_lists(parse, argv: list[str], message: str, capsys) -> None:
    """An empty list or a batch size of 0 is a usage error (exit 2), never read as "all" or passed on."""
    with pytest.raises(SystemExit) as info:
        parse(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
