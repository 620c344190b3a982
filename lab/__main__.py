"""`python -m lab`: the lab's command line."""

from lab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
