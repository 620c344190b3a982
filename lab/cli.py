"""`python -m lab`: the lab's experiments, over the product simulator (recommender simulate).

    python -m lab simulate [--world demo|junyi] [--policies adaptive,bayes,oracle,syllabus,popularity]
                           [--oracle-noise SD] [--oracle-margin M] ...

runs every chosen policy on the same hidden-truth learners and prints the table that
docs/simulator-experiments.md quotes;

    python -m lab fit-truth [--families all|tuning|held-out] [--history N] [--seed S]

fits BKT on a world family's past learners and prints it beside the simulator's truth (lab/fit_truth.py);

    python -m lab fixed-kt --params prior=0.01,learn=0.14 [--families ...] [--history N] ...

prints `recommender simulate --families`'s table with the trained service serving the given
knowledge-tracing parameters for every skill instead of its fit (the other fields: the untrained
defaults): what a fit that recovered those parameters would do to the paths.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

from lab.policies import LAB_POLICIES, NoisyOracle, historical_popularity, lab_policies
from recommender.kt.bkt import DEFAULT_PARAMS, SkillParams


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser(
        "simulate", help="adaptive paths vs the bayes and oracle bounds, the syllabus and popularity, on one world"
    )
    sim.add_argument("--world", choices=["demo", "junyi"], default="demo", help="the hidden world (default: demo)")
    sim.add_argument("--catalog", type=Path, help="catalog JSON (junyi: the converted Junyi catalog)")
    sim.add_argument("--learners", type=int, default=100, help="simulated learners (default: 100)")
    sim.add_argument("--max-modules", type=int, default=100, help="modules a learner may take at most (default: 100)")
    sim.add_argument("--seed", type=int, default=1, help="the world's and the learners' draws (default: 1)")
    sim.add_argument("--json", type=Path, dest="json_out", help="also write the report as JSON")
    sim.add_argument(
        "--history",
        type=int,
        default=0,
        metavar="N",
        help="first train a model on N past learners' results in the same hidden world and plan with it active",
    )
    sim.add_argument(
        "--keep-degenerate-bkt",
        dest="reset_degenerate_bkt",
        action="store_false",
        help="with --history: keep every fitted BKT parameter, degenerate ones too",
    )
    sim.add_argument(
        "--policies",
        default="",
        metavar="P,P",
        help=f"comma-separated, of {', '.join(LAB_POLICIES)} (default: all); the syllabus, the baseline of every "
        "reduction, always runs",
    )
    sim.add_argument(
        "--oracle-noise",
        type=float,
        default=0.0,
        metavar="SD",
        help="feed the oracle the true mastery plus Gaussian noise of this sd, drawn afresh every step: what "
        "knowledge tracing that accurate would give (default 0: the exact truth)",
    )
    sim.add_argument(
        "--oracle-margin",
        type=float,
        default=0.0,
        help="the oracle's margin on role levels, in [0, 1): a requirement met at level + margin * (1 - level)",
    )
    truth = sub.add_parser("fit-truth", help="the BKT fit on a family's past learners beside the simulator's truth")
    truth.add_argument("--families", default="all", help="a family name, or all, tuning or held-out (default: all)")
    truth.add_argument("--history", type=int, default=2000, metavar="N", help="past learners (default: 2000)")
    truth.add_argument("--seed", type=int, default=1, help="as recommender simulate --seed (default: 1)")
    fixed = sub.add_parser(
        "fixed-kt", help="the families' trained service with fixed knowledge-tracing parameters instead of its fit"
    )
    fixed.add_argument(
        "--params", required=True, metavar="NAME=V,...", help="SkillParams fields (the rest: the untrained defaults)"
    )
    fixed.add_argument("--families", default="all", help="a family name, or all, tuning or held-out (default: all)")
    fixed.add_argument("--history", type=int, default=2000, metavar="N", help="past learners (default: 2000)")
    fixed.add_argument("--learners", type=int, default=20, help="simulated learners per family (default: 20)")
    fixed.add_argument("--worlds", type=int, default=2, help="worlds per family (default: 2)")
    fixed.add_argument("--max-modules", type=int, default=100, help="modules a learner may take at most (default: 100)")
    fixed.add_argument("--seed", type=int, default=1, help="as recommender simulate --seed (default: 1)")
    fixed.add_argument("--json", type=Path, dest="json_out", help="also write the table as JSON")
    return parser


def fixed_params(spec: str) -> SkillParams:
    """`name=value,...` over the untrained defaults, served as a fit would serve them: a prior
    given without a floor is the floor too (a fitted skill forgets back to its prior).
    ValueError names what is wrong."""
    known = {f.name for f in fields(SkillParams)}
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, text = (s.strip() for s in part.partition("="))
        if not sep or name not in known:
            raise ValueError(f"{part!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(known))}")
        if name in values:
            raise ValueError(f"{name} given twice")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{part!r}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{part!r}: not a finite number")
        values[name] = value
    if not values:
        raise ValueError("no parameter given (NAME=VALUE,...)")
    if "prior" in values and "floor" not in values:
        values["floor"] = values["prior"]
    return replace(DEFAULT_PARAMS, **values)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "fit-truth":
        return _fit_truth(args)
    if args.command == "fixed-kt":
        return _fixed_kt(args)
    return _simulate(args)


def _fit_truth(args: argparse.Namespace) -> int:
    from lab.fit_truth import HEADER, fit_against_truth
    from recommender.simulation.families import select_families

    try:
        families = select_families(args.families)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(HEADER)
    for family in families:
        print(fit_against_truth(family, args.history, args.seed).row(), flush=True)
    return 0


def _fixed_kt(args: argparse.Namespace) -> int:
    from recommender.ml.train import TrainConfig
    from recommender.service.simulate_families import simulate_families
    from recommender.simulation.families import select_families

    try:
        params = fixed_params(args.params)
        families = select_families(args.families)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.history < 1 or args.learners < 1 or args.worlds < 1 or args.max_modules < 1:
        print("error: --history, --learners, --worlds and --max-modules must be >= 1", file=sys.stderr)
        return 2
    print(f"served knowledge tracing, every skill: {params}")
    table = simulate_families(
        families, learners=args.learners, max_modules=args.max_modules, seed=args.seed, history=args.history,
        worlds=args.worlds, train_config=TrainConfig(fit_bkt=False, unfitted_bkt=params),
    )  # fmt: skip
    print(table.table())
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(table.to_json(), indent=1) + "\n")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from recommender.cli import run_simulation
    from recommender.domain.catalog import build_catalog
    from recommender.domain.codec import catalog_parts_from_dict
    from recommender.service.demo import demo_catalog_path
    from recommender.service.simulate import cohort_for

    if args.world == "junyi" and not args.catalog:
        print("error: --world junyi needs --catalog (recommender convert junyi SRC OUT)", file=sys.stderr)
        return 2
    if args.history < 0 or args.learners < 1 or args.max_modules < 1:
        print("error: --learners and --max-modules must be >= 1, --history >= 0", file=sys.stderr)
        return 2
    try:
        NoisyOracle(args.oracle_noise, args.oracle_margin)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    chosen = {p.strip() for p in args.policies.split(",") if p.strip()} or set(LAB_POLICIES)
    unknown = sorted(chosen - set(LAB_POLICIES))
    if unknown:
        print(f"error: --policies: unknown {', '.join(unknown)} (known: {', '.join(LAB_POLICIES)})", file=sys.stderr)
        return 2
    path = args.catalog or demo_catalog_path()
    catalog = build_catalog(*catalog_parts_from_dict(json.loads(path.read_text(encoding="utf-8-sig"))))
    policies = lab_policies(
        sorted(chosen | {"syllabus"}),
        popularity=historical_popularity(catalog, args.seed) if "popularity" in chosen else (),
        oracle_noise=args.oracle_noise,
        oracle_margin=args.oracle_margin,
    )
    cohort = cohort_for(catalog, args.world, args.learners, args.seed)
    extra = {"oracle_noise": args.oracle_noise, "oracle_margin": args.oracle_margin}
    return run_simulation(args, catalog, cohort, policies, extra)
