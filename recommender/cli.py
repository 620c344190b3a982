"""The `recommender` command: thin commands over service/, with progress bars.

Global options override the LUBAN_* environment variables (docs/operations/configuration.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from tqdm import tqdm

from recommender.config import Settings
from recommender.errors import InvalidInput, LubanError
from recommender.listen import ListenError, check_free

if TYPE_CHECKING:
    from recommender.domain.catalog import Catalog
    from recommender.service.app import App
    from recommender.service.simulate import Policy
    from recommender.simulation.truth import HiddenLearner


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recommender", description="Luban Path learning-path service")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--store-url", help="store URL (env LUBAN_STORE_URL)")
    parser.add_argument("--address", help="gRPC listen address (env LUBAN_ADDRESS)")
    parser.add_argument("--models-dir", help="model folders (env LUBAN_MODELS_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", help="serve gRPC until SIGTERM (same as python server.py)")
    sub.add_parser("run", help="load the demo world if the store is empty, then serve (gRPC and the dashboard)")
    dash = sub.add_parser("dashboard", help="serve the web dashboard until SIGTERM (docs/dashboard.md)")
    dash.add_argument("--listen", help="HOST:PORT (env LUBAN_DASHBOARD_ADDRESS, default 127.0.0.1:8080)")
    demo = sub.add_parser("demo", help="load the demo world into the store (idempotent)")
    demo.add_argument("--learners", type=int, default=None, help="cohort size (default 2000)")

    catalog = sub.add_parser("catalog", help="catalog commands")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    load = catalog_sub.add_parser("load", help="load a catalog JSON file (docs/data-formats.md)")
    load.add_argument("file", type=input_file)
    load.add_argument("--merge", action="store_true", help="merge by id instead of replacing")
    load.add_argument("--tenant", help="load into this tenant's own catalog (default: the shared catalog)")

    imp = sub.add_parser("import", help="load event / learner / catalog files into the store")
    imp.add_argument("--events", type=input_file, help="events file (CSV, JSONL or Parquet; docs/data-formats.md)")
    imp.add_argument("--learners", type=input_file, help="learners file")
    imp.add_argument("--catalog", type=input_file, help="catalog JSON (merged into the store's catalog)")
    imp.add_argument("--tenant", default="default", help="tenant the learners belong to")

    conv = sub.add_parser("convert", help="convert a public dataset to the generic event format")
    conv.add_argument("dataset", choices=["assistments", "oulad", "junyi"])
    conv.add_argument("src", type=input_folder, help="the dataset's folder")
    conv.add_argument("out", type=Path, help="where events.csv, catalog.json (and learners.csv) go")

    train = sub.add_parser("train", help="train a model (from the store, or from files)")
    _training_args(train)
    train.add_argument("--force", action="store_true", help="activate even if not better than the active model")
    train.add_argument("--no-activate", action="store_true", help="save the version without activating it")
    train.add_argument("--tenant", default="default", help="whose data to train on and whose model it becomes")

    ev = sub.add_parser("evaluate", help="leakage-safe evaluation against baselines")
    _training_args(ev)
    ev.add_argument("--split", choices=["temporal", "cold"], default="temporal")
    ev.add_argument("--json", type=Path, dest="json_out", help="also write the results as JSON")

    sim = sub.add_parser("simulate", help="adaptive paths vs the oracle and the syllabus on simulated learners")
    sim.add_argument("--world", choices=["demo", "junyi"], default=None, help="one world (default: demo)")
    worlds = sim.add_mutually_exclusive_group()
    worlds.add_argument(
        "--family", metavar="NAME", help="one world family (simulation/families.py): adaptive / syllabus / oracle"
    )
    worlds.add_argument(
        "--families",
        choices=["all", "tuning", "held-out"],
        help="world families, one table row each; the summary reads the held-out ones",
    )
    sim.add_argument(
        "--catalog",
        type=Path,
        help="--world: catalog JSON (junyi: the converted Junyi catalog); --family/--families: the prerequisite "
        "graph of the Junyi families, Junyi's junyi_Exercise_table.csv (default: the shipped algebra excerpt)",
    )
    sim.add_argument("--learners", type=int, default=None, help="per world (default: 100; 40 per family)")
    sim.add_argument(
        "--worlds", type=int, default=4, help="--family/--families: worlds drawn per family, learners spread over them"
    )
    sim.add_argument("--max-modules", type=int, default=100)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--json", type=Path, dest="json_out", help="also write the report as JSON")
    sim.add_argument(
        "--history",
        type=int,
        default=0,
        metavar="N",
        help="first train a model on N past learners' results in the same hidden world (as `make run` trains on "
        "the demo's) and plan with it active; 0 (default): the service has no model",
    )
    _degenerate_bkt_args(sim, "with --history: ")
    sim.add_argument(
        "--chinese-route",
        action="store_true",
        help="--world demo: learners whose role needs modules taught only in Chinese above their HSK level, the "
        "adaptive policy against the language-blind one (no-route: Chinese only a filter) and the syllabus",
    )
    sim.add_argument(
        "--policies",
        default="",
        metavar="P,P",
        help="comma-separated policies to run, of adaptive, oracle, syllabus and no-route (default: all but no-route; "
        "with --chinese-route: adaptive and no-route); "
        "the syllabus, the baseline of every reduction, always runs",
    )

    paths = sub.add_parser("paths", help="plan first paths for a whole cohort from a file")
    paths.add_argument("--cohort", type=input_file, required=True, help="learners: CSV, JSONL or Parquet")
    paths.add_argument("--out", type=Path, required=True, help="output: .jsonl, .csv or .parquet")
    paths.add_argument("--events", type=input_file, help="prior assessment results (generic event format)")
    paths.add_argument("--steps", type=int, default=10)
    paths.add_argument("--model", help="model version (default: the active one)")
    paths.add_argument("--locale", default="", help="reason texts' locale (default: each learner's first language)")
    paths.add_argument("--workers", type=int, default=1, help="local worker processes")
    paths.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    paths.add_argument("--resume", action="store_true", help="continue an interrupted run")
    paths.add_argument("--persist", action="store_true", help="also store the learners (tenant 'default')")
    paths.add_argument("--as-of", help="plan as of this ISO 8601 time (default: now)")
    paths.add_argument("--chunk-size", type=int, default=2000, help="learners per task and per resumable part")

    models = sub.add_parser("models", help="model registry (one tenant's)")
    models.add_argument("--tenant", default="default", help="whose models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="stored versions, newest first")
    act = models_sub.add_parser("activate", help="serve this version")
    act.add_argument("version")
    models_sub.add_parser("rollback", help="serve the previously active version again")
    return parser


def input_file(text: str) -> Path:
    """An input file the command will read: a wrong one is one line before anything is opened."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable")
    return path


def input_folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {'a file, not a folder' if path.exists() else 'no such folder'}")
    return path


def _training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=input_file, help="events file; default: the store")
    p.add_argument("--catalog", type=input_file, help="catalog JSON (required with --events)")
    p.add_argument("--learners", type=input_file, help="learners file (features)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--components", type=int, default=16)
    _degenerate_bkt_args(p)
    p.add_argument(
        "--without-learner-ability",
        dest="learner_ability",
        action="store_false",
        help="fit module scores without each past learner's general ability: the fitted state may then be "
        "ability rather than knowledge (docs/decisions/0024-learner-ability-in-the-fit.md)",
    )


def _degenerate_bkt_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--reset-degenerate-bkt",
        dest="reset_degenerate_bkt",
        action="store_true",
        default=True,
        help=f"{prefix}skills whose BKT fit is degenerate (guess or slip at its bound) keep the default "
        "parameters (the default)",
    )
    group.add_argument(
        "--keep-degenerate-bkt",
        dest="reset_degenerate_bkt",
        action="store_false",
        help=f"{prefix}keep every fitted BKT parameter, degenerate ones too: better score prediction on OULAD, "
        "worse paths in the simulator (docs/decisions/0004-degenerate-bkt-reset.md)",
    )


def version() -> str:
    """The installed distribution's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("luban-path-recommender")
    except PackageNotFoundError:
        return "unknown (not installed)"


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("store_url", "address", "models_dir"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if getattr(args, "listen", None):
        overrides["dashboard_address"] = args.listen
    return Settings(**overrides)


def entry() -> None:
    """The `recommender` program (and `python -m recommender`): main(), then an exit whose
    interpreter shutdown does not walk the heap. Its final collection passes over every object
    left, and Numba's typing and compiler state are many; frozen, they are still freed by
    reference counting, and only reference cycles (none hold unwritten output: every command
    closes what it writes) are left to the operating system.

    `paths` also starts with the collector off: its start-up (imports, the store, the model, the
    compiled kernel) allocates objects that live as long as the process, and the collector's
    passes over them find nothing; they are frozen when it ends (_started)."""
    _START["collector_off"] = True
    gc.disable()
    code = main()  # a KeyboardInterrupt goes on: recommender/__main__.py says it in one line
    gc.freeze()
    sys.exit(code)


# entry() turned the collector off for the start-up of the command it runs
_START: dict[str, bool] = {}


def _started() -> None:
    """The command's start-up is over: what it made is frozen out of the collector's passes (and,
    before worker processes fork, shared with them unchanged), and the collector is on again."""
    if _START.pop("collector_off", False):
        gc.freeze()
        gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Alembic logs its plugins and every step of a store's migration at INFO: noise at each open
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = settings_from(args)
        return _dispatch(args, settings)
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
    if args.command != "paths":
        _started()
    from recommender.service.app import build_app

    if args.command == "convert":
        return _convert(args)
    if args.command == "simulate":
        return _simulate(args)
    if args.command in ("serve", "run"):
        check_free(settings.address)  # before loading or training anything
    if args.command in ("dashboard", "run"):
        check_free(settings.dashboard_address, "--listen or LUBAN_DASHBOARD_ADDRESS")
    if args.command == "serve":
        from recommender.composition_root import serve

        return serve(settings)
    if args.command == "dashboard":
        from recommender.composition_root import serve_dashboard

        serve_dashboard(settings)
        return 0
    from recommender.config import redact

    print(f"store: {redact(settings.store_url)}", file=sys.stderr)
    if args.command == "run":  # its loading and training log as the server it becomes does
        from recommender.composition_root import configure_logging

        configure_logging(settings, args.verbose)
    app = build_app(settings)
    try:
        if args.command == "run":
            _demo(app, None)
            if app.models.active() is None:
                _train_demo_model(app)
            from recommender.composition_root import serve, start_dashboard

            dashboard = start_dashboard(settings)  # its own process: it never takes the server's CPU
            try:
                return serve(settings, app, dashboard=f"http://{settings.dashboard_address}/")
            finally:
                dashboard.terminate()
                dashboard.wait(timeout=settings.grace_seconds + 5)
        if args.command == "demo":
            _demo(app, args.learners)
            return 0
        if args.command == "import":
            return _import(app, args)
        if args.command in ("train", "evaluate"):
            return _train_or_evaluate(app, args)
        if args.command == "models":
            return _models(app, args)
        if args.command == "paths":
            return _paths(app, args)
        if args.command == "catalog" and args.catalog_command == "load":
            catalog = app.catalogs.load_file(args.file, replace=not args.merge, tenant=args.tenant)
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


def _import(app: App, args: argparse.Namespace) -> int:
    from recommender.service.importer import Importer

    if not (args.events or args.learners or args.catalog):
        print("error: give --events, --learners and/or --catalog", file=sys.stderr)
        return 2
    with tqdm(unit="event", desc="import", disable=None) as bar:

        def advance(n: int) -> None:
            bar.update(n)

        report = Importer(app.store, app.catalogs, app.learners).run(
            args.tenant, args.events, args.learners, args.catalog, progress=advance
        )
    for problem in report.problems[:100]:
        print(f"skipped {problem}", file=sys.stderr)
    if report.rejected > 100:
        print(f"... and {report.rejected - 100} more", file=sys.stderr)
    print(
        f"imported: {report.accepted} events, {report.duplicates} duplicates, {report.rejected} rejected; "
        f"{report.learners} learners from file, {report.learners_created} created from events"
    )
    return 0


def _convert(args: argparse.Namespace) -> int:
    from recommender.datasets.converters import CONVERTERS

    try:
        report = CONVERTERS[args.dataset](args.src, args.out)
    except (FileNotFoundError, KeyError) as exc:
        print(f"error: {args.src} does not look like the {args.dataset} dataset: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


def _train_or_evaluate(app: App, args: argparse.Namespace) -> int:
    from recommender.ml.evaluate import evaluate, make_split
    from recommender.ml.train import TrainConfig
    from recommender.service.models import training_data_from_files, training_data_from_store

    config = TrainConfig(
        seed=args.seed,
        epochs=args.epochs,
        components=args.components,
        reset_degenerate_bkt=args.reset_degenerate_bkt,
        learner_ability=args.learner_ability,
        features=app.training.features,
    )
    if args.events:
        if not args.catalog:
            print("error: --events needs --catalog", file=sys.stderr)
            return 2
        tenant = args.tenant if args.command == "train" else None  # a trained model is the tenant's
        data, problems = training_data_from_files(args.events, args.catalog, args.learners, tenant)
        for problem in problems[:20]:
            print(f"skipped {problem}", file=sys.stderr)
    else:
        data = training_data_from_store(app.store, app.catalogs.require(), getattr(args, "tenant", "default"))
    print(f"{len(data.events)} events, {len(data.events.learner_ids)} learners, {len(data.catalog.module_ids)} modules")
    with tqdm(
        total=100, unit="%", desc=args.command, disable=None, bar_format="{l_bar}{bar}| {elapsed} {postfix}"
    ) as bar:

        def progress(message: str, fraction: float) -> None:
            bar.n = round(100 * fraction)
            bar.set_postfix_str(message[:60])

        if args.command == "evaluate":
            evaluation, _ = evaluate(data, make_split(args.split, data.events, args.seed), config, progress)
        else:
            outcome = app.training.train(
                config, tenant=args.tenant, data=data, force=args.force, activate=not args.no_activate,
                progress=progress,
            )  # fmt: skip
            evaluation = outcome.evaluation
    print(evaluation.table())
    if args.command == "evaluate":
        if args.json_out:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(evaluation.to_json(), indent=1) + "\n")
            print(f"wrote {args.json_out}")
        return 0
    _print_comparison(outcome)
    return 0


def _print_comparison(outcome: Any) -> None:
    new = outcome.evaluation.models["luban"]
    if outcome.previous_version:
        print(f"\n{'metric':<14}{'new ' + outcome.version:>40}{'active ' + outcome.previous_version:>40}")
        for key in ("auc", "rmse", "ece", "ndcg@10", "precision@10", "recall@10"):
            old = outcome.previous_metrics.get(key, float("nan"))
            print(f"{key:<14}{new.get(key, float('nan')):>40.4f}{old:>40.4f}")
    state = "activated" if outcome.activated else "saved, not activated (not better; --force to activate)"
    print(f"\nmodel {outcome.version}: {state} ({outcome.seconds:.1f} s)")


def _paths(app: App, args: argparse.Namespace) -> int:
    import time
    from datetime import UTC, datetime

    from recommender.api.export import encoder_for
    from recommender.domain.learner import validate_learner
    from recommender.ml.artifacts import load_model
    from recommender.service.cohort_files import CohortOptions, DaskRunner, LocalRunner, prior_results, run_cohort
    from recommender.service.recommend import Planner

    try:
        encode, finish = encoder_for(args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not 1 <= args.steps <= 50:
        print("error: --steps must be in [1, 50]", file=sys.stderr)
        return 2
    catalog = app.catalogs.require()
    model = load_model(app.models.folder(args.model)) if args.model else app.models.active()
    s = app.settings
    planner = Planner.build(
        catalog, model, s.mastery_confidence, s.check_after_studies, s.max_module_attempts, s.planner_kernel
    )
    now = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    problems: list[str] = []
    prior = prior_results(args.events, planner, problems)
    for problem in problems[:20]:
        print(f"skipped {problem}", file=sys.stderr)
    options = CohortOptions(steps=args.steps, locale=args.locale)
    if args.scheduler:
        runner: Any = DaskRunner(args.scheduler, planner, options, now, encode)
    else:
        runner = LocalRunner(planner, options, now, encode, args.workers)
    _started()  # before the pool's workers fork
    persist = None
    if args.persist:

        def persist(learners: list[Any]) -> None:
            app.learners.upsert_many("default", learners)

    started = time.perf_counter()
    with tqdm(total=_count_rows(args.cohort), unit="learner", desc="paths", disable=None) as bar:

        def advance(n: int) -> None:
            bar.update(n)

        summary = run_cohort(
            args.cohort, args.out, runner, finish=finish, prior=prior, resume=args.resume, persist=persist,
            catalog_check=lambda x: validate_learner(x, catalog), progress=advance, chunk_size=args.chunk_size,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    print(
        f"{summary.learners} learners: {summary.planned} paths written to {args.out}, {summary.rejected} rejected "
        f"(see {summary.errors_file}); {summary.learners / max(seconds, 1e-9):.0f} learners/s"
        + (f", {summary.chunks_resumed} chunks resumed" if summary.chunks_resumed else "")
    )
    return 1 if summary.rejected and not summary.planned else 0


def _count_rows(path: Path) -> int | None:
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    if name.endswith(".gz"):
        return None
    with path.open("rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return lines - 1 if name.endswith(".csv") else lines


def _simulate(args: argparse.Namespace) -> int:
    from recommender.domain.catalog import build_catalog
    from recommender.domain.codec import catalog_parts_from_dict
    from recommender.service.demo import demo_catalog_path
    from recommender.service.simulate import NO_ROUTE, POLICIES, chinese_route_cohort, cohort_for

    if args.family or args.families:
        return _simulate_families(args)
    args.world = args.world or "demo"
    args.learners = 100 if args.learners is None else args.learners
    if args.world == "junyi" and not args.catalog:
        print("error: --world junyi needs --catalog (recommender convert junyi SRC OUT)", file=sys.stderr)
        return 2
    path = args.catalog or demo_catalog_path()
    catalog = build_catalog(*catalog_parts_from_dict(json.loads(path.read_text(encoding="utf-8-sig"))))
    if args.history < 0:
        print("error: --history must be >= 0", file=sys.stderr)
        return 2
    known = (*POLICIES, NO_ROUTE)
    default = ["adaptive", NO_ROUTE] if args.chinese_route else list(POLICIES)
    chosen = [p.strip() for p in args.policies.split(",") if p.strip()] or default
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        print(f"error: --policies: unknown {', '.join(unknown)} (known: {', '.join(known)})", file=sys.stderr)
        return 2
    policies = [p for p in known if p in chosen or p == "syllabus"]
    if args.chinese_route:
        cohort = chinese_route_cohort(catalog, args.learners, args.seed)
        print(f"{len(cohort)} learners whose role needs modules taught only in Chinese above their HSK level")
    else:
        cohort = cohort_for(catalog, args.world, args.learners, args.seed)
    return run_simulation(args, catalog, cohort, policies)


def run_simulation(
    args: argparse.Namespace,
    catalog: Catalog,
    cohort: Sequence[HiddenLearner],
    policies: Sequence[str | Policy],
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Simulate `policies` on `cohort` (after training on `--history` past learners, if asked),
    with a progress bar; print the table and write `--json`. The lab's command runs it too."""
    from recommender.ml.train import TrainConfig
    from recommender.service.simulate import cohort_for, simulate

    past = cohort_for(catalog, args.world, args.history, args.seed, past=True)
    if past:
        print(f"training a model on {len(past)} past learners' results first")
    with tqdm(total=len(policies) * len(cohort), unit="learner", desc="simulate", disable=None) as bar:

        def advance(n: int) -> None:
            bar.update(n)

        report = simulate(
            catalog,
            cohort,
            world_name=args.world,
            seed=args.seed,
            max_modules=args.max_modules,
            policies=policies,
            progress=advance,
            history=past,
            train_config=TrainConfig(reset_degenerate_bkt=args.reset_degenerate_bkt),
            extra=extra,
        )
    print(report.table())
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report.to_json(), indent=1) + "\n")
        print(f"wrote {args.json_out}")
    return 0


def _simulate_families(args: argparse.Namespace) -> int:
    from recommender.ml.train import TrainConfig
    from recommender.service.simulate_families import FAMILY_POLICIES, simulate_families
    from recommender.simulation.families import read_concept_graph, select_families

    try:
        families = select_families(args.family or args.families)
    except ValueError as exc:
        print(f"error: --family: {exc}", file=sys.stderr)
        return 2
    if args.world or args.policies:
        print("error: --world and --policies apply to one world, not to families", file=sys.stderr)
        return 2
    learners = 40 if args.learners is None else args.learners
    if learners < 1 or args.max_modules < 1 or args.history < 0 or args.worlds < 1:
        print("error: --learners, --max-modules and --worlds must be >= 1, --history >= 0", file=sys.stderr)
        return 2
    graph = read_concept_graph(args.catalog) if args.catalog else None
    runs = len(FAMILY_POLICIES) + (1 if args.history else 0)
    with tqdm(total=len(families) * runs * learners, unit="learner", desc="simulate", disable=None) as bar:

        def advance(n: int) -> None:
            bar.update(n)

        table = simulate_families(
            families, learners=learners, max_modules=args.max_modules, seed=args.seed, history=args.history,
            worlds=args.worlds, graph=graph, progress=advance,
            train_config=TrainConfig(reset_degenerate_bkt=args.reset_degenerate_bkt),
        )  # fmt: skip
    print(table.table())
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(table.to_json(), indent=1) + "\n")
        print(f"wrote {args.json_out}")
    return 0


def _models(app: App, args: argparse.Namespace) -> int:
    if args.models_command == "list":
        infos = app.models.list(args.tenant)
        if not infos:
            print(f"no models of {args.tenant} yet: run `recommender train --tenant {args.tenant}`")
        for info in infos:
            marker = "*" if info.active else " "
            auc = info.metrics.get("auc", float("nan"))
            ndcg = info.metrics.get("ndcg@10", float("nan"))
            print(f"{marker} {info.version}  events={info.training_events}  auc={auc:.4f}  ndcg@10={ndcg:.4f}")
        return 0
    if args.models_command == "activate":
        info, previous = app.models.activate(args.version, args.tenant)
    else:
        info, previous = app.models.rollback(args.tenant)
    print(f"active: {info.version} (was {previous or 'none'})")
    return 0


def _train_demo_model(app: App) -> None:
    from recommender.ml.train import TrainConfig

    print("no active model: training one on the store's assessments")
    with tqdm(total=100, unit="%", desc="train", disable=None) as bar:

        def progress(message: str, fraction: float) -> None:
            bar.n = round(100 * fraction)
            bar.set_postfix_str(message[:50])

        outcome = app.training.train(TrainConfig(), force=True, progress=progress)
    luban = outcome.evaluation.models["luban"]
    print(f"model {outcome.version} active (AUC {luban.get('auc', float('nan')):.3f}, {outcome.seconds:.1f} s)")


def _demo(app: App, learners: int | None) -> None:
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
