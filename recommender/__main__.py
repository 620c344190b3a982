"""`python -m recommender` and the `recommender` program (pyproject's entry point is `entry` here).

A Ctrl-C that no command handles ends the program with one line instead of a traceback, and
still by SIGINT, after a normal shutdown, so a calling shell or make stops too. The hook is set
here, before anything heavy is imported. The `recommender` program's worker processes run its
script first (multiprocessing's spawn runs the parent's main script, though not a package's
`__main__`), so a worker of `recommender serve` still importing when a terminal's Ctrl-C reaches
the whole group says so in one line too."""

import sys
from types import TracebackType


def _interrupted_quietly(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")  # one write: the processes of a group may say it at once
        sys.stderr.flush()
    else:
        sys.__excepthook__(kind, value, tb)


sys.excepthook = _interrupted_quietly

from recommender.cli import entry  # noqa: E402 - after the hook: this import is most of the start

if __name__ == "__main__":  # not when a worker process (multiprocessing's spawn) imports it
    entry()
