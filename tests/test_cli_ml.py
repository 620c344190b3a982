"""The ML engineer's commands end to end on temporary folders: convert, import, train,
evaluate, models list / activate / rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.cli import main
from recommender.datasets.formats import EVENT_COLUMNS, write_csv
from tests.conftest import T0

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_convert_import_train_evaluate_and_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store-url", f"sqlite:///{tmp_path / 's.db'}", "--models-dir", str(tmp_path / "models")]
    out = tmp_path / "oulad"
    assert main(["convert", "oulad", str(FIXTURES / "oulad"), str(out)]) == 0
    assert "oulad:" in capsys.readouterr().out
    # a bad row in the events file is reported with its line number and skipped
    with (out / "events.csv").open("a") as handle:
        handle.write("bad-1,ou-AAA-2013J-11391,ou-AAA-2013J-1752,,,1.7,2013-10-20T00:00:00+00:00,,,\n")
    args = ["import", "--events", str(out / "events.csv"), "--learners", str(out / "learners.csv"),
            "--catalog", str(out / "catalog.json")]  # fmt: skip
    assert main([*store, *args]) == 0
    captured = capsys.readouterr()
    assert "rejected" in captured.out and "1 rejected" in captured.out
    assert "events.csv:" in captured.err and "score" in captured.err
    accepted = int(captured.out.split("imported: ")[1].split(" events")[0])
    assert accepted > 40
    assert main([*store, *args]) == 0, "importing again is idempotent"
    assert f"0 events, {accepted} duplicates" in capsys.readouterr().out

    assert main([*store, "train", "--epochs", "5", "--seed", "3"]) == 0
    trained = capsys.readouterr().out
    assert "activated" in trained and "luban" in trained and "popularity" in trained
    assert main([*store, "train", "--epochs", "5", "--seed", "3"]) == 0
    second = capsys.readouterr().out
    assert "not activated" in second and "active " in second, "metrics compared side by side"

    report = tmp_path / "eval.json"
    assert main([*store, "evaluate", "--split", "cold", "--epochs", "5", "--json", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert doc["split"] == "cold" and {"luban", "bkt", "popularity", "random", "syllabus", "cf_only"} <= set(
        doc["models"]
    )
    assert "auc" not in doc["models"]["syllabus"], "metrics that do not apply are omitted"
    assert "ndcg@10" in doc["models"]["luban"] and "warm" in doc

    capsys.readouterr()
    assert main([*store, "models", "list"]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert len(listed) == 2 and sum(line.startswith("*") for line in listed) == 1
    older = listed[1].split()[0]
    newest = listed[0].split()[0].lstrip("*")
    assert main([*store, "models", "activate", newest if not listed[0].startswith("*") else older]) == 0
    assert main([*store, "models", "rollback"]) == 0
    assert "active:" in capsys.readouterr().out

    assert main([*store, "train", "--epochs", "3", "--keep-degenerate-bkt", "--no-activate"]) == 0
    metas = [json.loads(p.read_text()) for p in (tmp_path / "models" / "tenants" / "default").glob("*/meta.json")]
    assert sorted(m["params"]["reset_degenerate_bkt"] for m in metas) == [False, True, True], "reset unless kept"
    with pytest.raises(SystemExit):
        main([*store, "train", "--keep-degenerate-bkt", "--reset-degenerate-bkt"])
    assert main([*store, "train", "--epochs", "3", "--without-learner-ability", "--no-activate"]) == 0
    metas = [json.loads(p.read_text()) for p in (tmp_path / "models" / "tenants" / "default").glob("*/meta.json")]
    assert sorted(m["params"]["learner_ability"] for m in metas) == [False, True, True, True], "on unless turned off"


def test_train_from_files_and_the_step_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store-url", f"sqlite:///{tmp_path / 's.db'}", "--models-dir", str(tmp_path / "models")]
    out = tmp_path / "as"
    assert main(["convert", "assistments", str(FIXTURES / "assistments"), str(out)]) == 0
    assert main([*store, "evaluate", "--events", str(out / "events.csv"), "--catalog", str(out / "catalog.json"),
                 "--epochs", "3"]) == 0  # fmt: skip
    assert "temporal split" in capsys.readouterr().out
    assert main([*store, "evaluate", "--events", str(out / "events.csv")]) == 2


def test_generic_format_in_jsonl_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recommender.datasets.formats import BadRow, read_events

    rows = [
        {"learner_id": "a", "module_id": "m", "score": 1.0, "occurred_at": T0.isoformat(), "skill_ids": ["s1", "s2"]},
        {"learner_id": "a", "module_id": "m", "score": 0.5, "step": 3},
        {"learner_id": "a", "module_id": "m", "score": "x", "step": 4},
    ]
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    got = list(read_events(tmp_path / "e.jsonl"))
    assert [type(g).__name__ for g in got] == ["tuple", "tuple", "BadRow", "BadRow"]
    assert isinstance(got[2], BadRow) and got[2].line == 3 and "score" in got[2].error
    first = got[0]
    assert isinstance(first, tuple) and first[1].skill_ids == ("s1", "s2")
    columns = ["learner_id", "module_id", "score", "occurred_at", "step", "skill_ids"]
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows[:2]])
    pq.write_table(table, tmp_path / "e.parquet")
    parquet = [g for g in read_events(tmp_path / "e.parquet") if not isinstance(g, BadRow)]
    assert [e.event_id for _, e in parquet] == [e.event_id for _, e in got[:2]]  # type: ignore[misc]
    assert write_csv(tmp_path / "x.csv", EVENT_COLUMNS, []) == 0
