"""Shared plumbing of the small absl command-line tools (benchmark, android, latency grid).

Each tool keeps its own ``FlagValues`` so that tools sharing flag names
(``--tflite``, ``--threads``) can live in one process, e.g. in tests. Errors
go to stderr as one line ``<tool>: error: <message>`` with exit status 1.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

from absl import flags

from pipeline.errors import PruningError


def fail(program: str, message: str) -> int:
    """Prints ``<program>: error: <message>`` to stderr; returns the exit status 1."""
    print(f"{program}: error: {message}", file=sys.stderr)
    return 1


def flags_parser(program: str, flag_values: flags.FlagValues,
                 doc: str) -> Callable[[Sequence[str]], list[str]]:
    """An absl ``flags_parser`` for a tool with its own ``flag_values``.

    The parser prints ``doc`` and the flags on ``--help``, resets earlier
    values (a second in-process run must not inherit the first one's), parses
    the tool's flags, then absl's own (rejecting unknown ones), and exits 1
    with one line on a bad flag.
    """
    def parse(argv: Sequence[str]) -> list[str]:
        if any(a in ("-h", "--help", "-?", "--helpshort") for a in argv[1:]):
            print(doc + "\nFlags:\n" + flag_values.get_help())
            sys.exit(0)
        flag_values.unparse_flags()
        try:
            rest = flag_values(list(argv), known_only=True)
            return flags.FLAGS(rest)
        except flags.Error as e:
            sys.exit(fail(program, f"{e}; run with --help to list the flags"))

    return parse


def entry_points(program: str, flag_values: flags.FlagValues, doc: str,
                 main: Callable[[list[str]], int]):
    """A tool's ``(parse_argv, run)``: its absl flags parser, and ``run(argv)`` for tests.

    ``run`` parses ``argv`` (program name first) with ``parse_argv`` and calls
    ``main`` in-process, returning its exit status; ``app.run(main,
    flags_parser=parse_argv)`` is the command itself.
    """
    parse_argv = flags_parser(program, flag_values, doc)

    def run(argv: Sequence[str]) -> int:
        return main(parse_argv(argv))

    return parse_argv, run


def thread_counts(values: Sequence[str], example: str = "1,2") -> tuple[int, ...]:
    """``--threads`` values as positive ints.

    Raises:
      PruningError: a value is not a positive integer, or there is none.
    """
    if not values or not all(v.strip().isdigit() and int(v) > 0 for v in values):
        raise PruningError(f"--threads={','.join(values)}: expected comma-separated positive "
                           f"integers, e.g. --threads={example}", argument="threads")
    return tuple(int(v) for v in values)
