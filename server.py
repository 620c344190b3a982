"""`python server.py` is `recommender serve`: settings from LUBAN_* environment variables."""

from recommender.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["serve"]))
