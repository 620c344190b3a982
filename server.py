"""`python server.py` is `recommender serve`: settings from LUBAN_* environment variables."""

import recommender.__main__  # noqa: F401 - first: a Ctrl-C while it starts is one line, not a traceback
from recommender.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["serve"]))
