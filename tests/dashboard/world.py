"""Two tenants on one store for the dashboard tests: north (platform + ml roles, two trained model
versions) and south (platform only), each with its own cohort of demo learners and histories."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.config import Settings
from recommender.ml.train import TrainConfig
from recommender.service.app import App, build_app
from recommender.service.demo import DEMO_SEED, load_demo, record_histories
from recommender.simulation.truth import make_world, sample_learners

NORTH_TOKEN = "north-token-0123456789"
SOUTH_TOKEN = "south-token-0123456789"
ML_TOKEN = "north-ml-only-0123456789"
NORTH_COHORT = "demo-2026"
SOUTH_COHORT = "south-2026"


@dataclass(frozen=True)
class World:
    app: App
    settings: Settings
    north_versions: tuple[str, str]  # (active, the other one)


def build_world(folder: Path, north: int = 120, south: int = 40, auth: bool = True) -> World:
    tokens = folder / "tokens.json"
    tokens.write_text(
        json.dumps(
            [
                {"token": NORTH_TOKEN, "tenant": "north", "roles": ["platform", "ml"]},
                {"token": SOUTH_TOKEN, "tenant": "south", "roles": ["platform"]},
                {"token": ML_TOKEN, "tenant": "north", "roles": ["ml"]},
            ]
        )
    )
    settings = Settings(
        store_url=f"sqlite:///{folder / 'dash.db'}",
        models_dir=folder / "models",
        auth_tokens_file=tokens if auth else None,
        dashboard_session_secret="test-secret-for-signed-cookies",
    )
    app = build_app(settings)
    tenant = "north" if auth else "default"
    load_demo(app, learners=north, tenant=tenant)
    catalog = app.catalogs.require()
    world = make_world(catalog, np.random.default_rng([DEMO_SEED, 0]))
    cohort = sample_learners(catalog, south, np.random.default_rng([7, 1]), prefix="south", cohort_id=SOUTH_COHORT)
    record_histories(app, world, list(enumerate(cohort)), 7, tenant="south")
    config = TrainConfig(epochs=3, components=8)
    first = app.training.train(config, tenant=tenant, force=True)
    second = app.training.train(TrainConfig(epochs=3, components=8, seed=7), tenant=tenant, activate=False)
    return World(app, settings, (first.version, second.version))
