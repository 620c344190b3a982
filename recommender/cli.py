"""The `recommender` command: thin commands over service/, with progress bars.

Global options override the LUBAN_* environment variables (see README, configuration).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from recommender.config import Settings
from recommender.errors import InvalidInput, LubanError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recommender", description="Luban Path learning-path service")
    parser.add_argument("--store-url", help="store URL (env LUBAN_STORE_URL)")
    parser.add_argument("--address", help="gRPC listen address (env LUBAN_ADDRESS)")
    parser.add_argument("--models-dir", help="model folders (env LUBAN_MODELS_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", help="serve gRPC until SIGTERM (same as python server.py)")
    sub.add_parser("run", help="load the demo world if the store is empty, then serve")
    demo = sub.add_parser("demo", help="load the demo world into the store (idempotent)")
    demo.add_argument("--learners", type=int, default=None, help="cohort size (default 2000)")

    catalog = sub.add_parser("catalog", help="catalog commands")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    load = catalog_sub.add_parser("load", help="load a catalog JSON file (README: format)")
    load.add_argument("file", type=Path)
    load.add_argument("--merge", action="store_true", help="merge by id instead of replacing")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("store_url", "address", "models_dir"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        settings = settings_from(args)
        return _dispatch(args, settings)
    except ValidationError as exc:
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        return 2
    except InvalidInput as exc:
        print("error: invalid input:", file=sys.stderr)
        for v in exc.violations[:50]:
            print(f"  {v.field}: {v.description}", file=sys.stderr)
        return 2
    except LubanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.service.app import build_app

    if args.command == "serve":
        from recommender.server import serve

        serve(settings)
        return 0
    app = build_app(settings)
    try:
        if args.command == "run":
            _demo(app, None)
            from recommender.server import serve

            serve(settings, app)
            return 0
        if args.command == "demo":
            _demo(app, args.learners)
            return 0
        if args.command == "catalog" and args.catalog_command == "load":
            catalog = app.catalogs.load_file(args.file, replace=not args.merge)
            print(
                json.dumps(
                    {
                        "skills": len(catalog.skills),
                        "modules": len(catalog.modules),
                        "roles": len(catalog.roles),
                        "revision": catalog.revision,
                    }
                )
            )
            return 0
    finally:
        app.close()
    raise AssertionError(f"unhandled command {args.command}")


def _demo(app: Any, learners: int | None) -> None:
    from recommender.service.demo import DEMO_LEARNERS, load_demo

    total = learners or DEMO_LEARNERS
    with tqdm(total=total, unit="learner", desc="demo world", disable=None) as bar:

        def advance(n: int) -> None:
            bar.update(n)

        summary = load_demo(app, learners=total, progress=advance)
    print(
        f"demo world: catalog {'loaded' if summary.catalog_loaded else 'already present'}, "
        f"{summary.learners_added} learners added, {summary.events_accepted} assessments recorded"
    )
