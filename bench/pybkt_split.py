"""Exchange files with pyBKT (run in its own venv) on exactly the split `recommender evaluate` uses.

export EVENTS CATALOG SPLIT OUTDIR: write train.csv / test.csv (order_id, user_id, skill_name, correct)
score OUTDIR PREDICTIONS: print AUC, RMSE, ECE of pyBKT's test predictions as JSON.
A collapsed multi-skill event is given to pyBKT under its first skill (pyBKT takes one per row).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from recommender.ml.evaluate import make_split
from recommender.ml.metrics import auc, expected_calibration_error, rmse
from recommender.ml.train import PASS_SCORE
from recommender.service.models import training_data_from_files


def export(events: Path, catalog: Path, split_name: str, out: Path) -> None:
    data, _ = training_data_from_files(events, catalog)
    table = data.events
    split = make_split(split_name, table)
    test = split.warm_test | split.cold_test
    out.mkdir(parents=True, exist_ok=True)
    first_skill = table.skill_idx[table.skill_ptr[:-1]]
    for name, mask in (("train", split.train), ("test", test)):
        with (out / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["order_id", "user_id", "skill_name", "correct", "score"])
            for i in np.flatnonzero(mask):
                writer.writerow(
                    [
                        i,
                        table.learner_ids[table.learner[i]],
                        data.catalog.skill_ids[first_skill[i]],
                        int(table.score[i] >= PASS_SCORE),
                        table.score[i],
                    ]
                )


def score(out: Path, predictions: Path) -> None:
    truth = {int(r["order_id"]): float(r["score"]) for r in csv.DictReader((out / "test.csv").open())}
    pred = {int(r["order_id"]): float(r["correct_predictions"]) for r in csv.DictReader(predictions.open())}
    ids = sorted(truth)
    scores = np.array([truth[i] for i in ids])
    p = np.array([pred.get(i, 0.5) for i in ids])
    labels = scores >= PASS_SCORE
    print(
        json.dumps(
            {
                "auc": auc(labels, p),
                "rmse": rmse(scores, p),
                "ece": expected_calibration_error(labels, p),
                "missing": sum(i not in pred for i in ids),
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
    else:
        score(Path(sys.argv[2]), Path(sys.argv[3]))
