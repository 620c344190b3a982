"""Runs inside bench/.venv-pybkt (pyBKT needs scikit-learn < 1.8; see BENCHMARKS.md).

`python bench/pybkt_eval.py TRAIN.csv TEST.csv OUT.csv`: fits pyBKT on the training rows, then
predicts every row of train + test in order (so each test prediction sees only the responses
before it) and writes the test rows' predictions (order_id, prediction).
"""

import sys
import time

import pandas as pd
from pyBKT.models import Model


def main() -> None:
    train = pd.read_csv(sys.argv[1])
    test = pd.read_csv(sys.argv[2])
    started = time.perf_counter()
    model = Model(seed=42, num_fits=1)
    model.fit(data=train)
    fitted = time.perf_counter() - started
    both = pd.concat([train, test]).sort_values("order_id").reset_index(drop=True)
    predicted = model.predict(data=both)
    out = predicted[predicted["order_id"].isin(set(test["order_id"]))][["order_id", "correct_predictions"]]
    out.to_csv(sys.argv[3], index=False)
    print(f"fit_seconds={fitted:.2f}")


if __name__ == "__main__":
    main()
