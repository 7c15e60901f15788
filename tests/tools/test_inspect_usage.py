"""pomai-inspect's command line: --version, help per command, and usage
errors (exit 2, nothing on stdout, the reason and the usage on stderr)."""

from __future__ import annotations

import importlib.metadata

import pytest

import pomaidb

from inspect_support import segments, wals

COMMANDS = ("summary", "segment", "verify", "dump", "graph")


def test_version_is_the_package_version(inspect_tool):
    run = inspect_tool("--version")
    assert run.code == 0 and run.err == ""
    assert run.out == f"pomai-inspect {importlib.metadata.version('pomai')}\n"
    assert run.out == f"pomai-inspect {pomaidb.__version__}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command_goes_to_stdout(inspect_tool, db_dir, command):
    run = inspect_tool("help", command)
    assert run.code == 0 and run.err == ""
    assert run.out.startswith("usage: pomai-inspect")
    assert "options:" in run.out and "--json" in run.out and "Exit status" in run.out
    # The command's own options only.
    assert ("--limit" in run.out) == (command == "dump")
    assert ("--kind" in run.out) == (command in ("verify", "dump"))
    assert ("--group" in run.out) == (command == "graph")
    # COMMAND --help (for the summary: DIR --help) prints the same.
    args = (db_dir, "--help") if command == "summary" else (command, "--help")
    same = inspect_tool(*args)
    assert (same.code, same.out, same.err) == (0, run.out, "")
    assert inspect_tool(*args[:-1], "-h").out == run.out


def test_help_alone_is_the_general_usage(inspect_tool):
    run = inspect_tool("help")
    assert run.code == 0 and run.err == ""
    assert run.out.startswith("usage: pomai-inspect")
    for synopsis in ("DIR", "segment FILE", "verify", "dump", "graph FILE", "help", "--version"):
        assert synopsis in run.out
    same = inspect_tool("--help")
    assert (same.code, same.out) == (0, run.out)


def usage_errors(db, seg, wal):
    """(command line, what stderr must say) of every kind of usage error."""
    return [
        (("help", "bogus"), "unknown command 'bogus'"),
        (("help", "verify", "dump"), "help takes one command"),
        ((db, "--bogus"), "unknown option --bogus"),
        (("verify", db, "--frobnicate"), "unknown option --frobnicate"),
        (("dump", seg, "--limit"), "--limit needs a number"),
        (("dump", seg, "--limit", "ten"), "--limit needs a number"),
        (("dump", seg, "--limit", "-1"), "--limit needs a number"),
        (("dump", seg, "--prefix", "70000"), "--prefix needs a number <= 65536"),
        (("dump", wal, "--dim", "8"), "unknown option --dim"),  # records carry their dims
        (("dump", seg, "--kind"), "--kind needs segment, wal or manifest"),
        (("dump", seg, "--kind", "table"), "--kind needs segment, wal or manifest"),
        (("verify", db, seg), "verify takes one path, got 2"),
        (("dump", seg, wal), "dump takes one path, got 2"),
        ((db, db), "the summary takes one path, got 2"),
        (("segment",), "segment needs a path"),
        (("verify",), "verify needs a path"),
        (("dump",), "dump needs a path"),
        (("bogus", db), "unknown command 'bogus'"),
        (("bogus", "x"), "unknown command 'bogus'"),  # paths that do not exist
        (("verify", "a", "b"), "verify takes one path, got 2"),
        (("--limit", "x", "dump", "f"), "--limit needs a number"),  # options before the command
        (("--frobnicate", "x"), "unknown option --frobnicate"),
        (("--kind", "table", "dump", "f"), "--kind needs segment, wal or manifest"),
        (("verify", db, "--limit", "5"), "verify does not take --limit"),
        (("graph", seg, "--prefix", "8"), "graph does not take --prefix"),
        (("graph", seg, "--group"), "--group needs a group number"),
        (("graph", seg, "--group", "x"), "--group needs a group number"),
        (("dump", seg, "--group", "1"), "dump does not take --group"),
        (("segment", seg, "--kind", "segment"), "segment does not take --kind"),
        ((db, "--prefix", "2"), "the summary (pomai-inspect DIR) does not take --prefix"),
        (("verify", db, "--kind", "wal"), "--kind applies to a file"),
        ((seg,), "is a file, not a database directory"),
        # A directory given to a command that takes a file: which commands take one.
        *[((command, db), f"{db} is a directory; a directory is taken by `pomai-inspect DIR` (the summary) and "
                          "`pomai-inspect verify DIR`") for command in ("dump", "segment", "graph")],
        ((), ""),
    ]


def test_every_usage_error_exits_2_and_prints_nothing_on_stdout(inspect_tool, db_dir):
    seg, wal = segments(db_dir)[0], wals(db_dir)[0]
    for args, why in usage_errors(db_dir, seg, wal):
        for line in (args, ("--json", *args)):
            run = inspect_tool(*line)
            assert run.code == 2, (line, run.out, run.err)
            assert run.out == "", line
            assert why in run.err and "usage: pomai-inspect" in run.err, (line, run.err)
