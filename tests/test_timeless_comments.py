"""Comments and docstrings in recommender/ say why, timelessly: no dates and no benchmark figures
(history goes to CHANGELOG.md and docs/decisions/, measurements to BENCHMARKS.md)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "recommender"
GENERATED = PACKAGE / "api" / "pb" / "luban"

MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
DATE = re.compile(
    rf"\b(?:19|20)\d\d-[01]\d-[0-3]\d\b"  # 2026-12-03
    rf"|\b[0-3]?\d {MONTH} (?:19|20)\d\d\b"  # 3 December 2026
    rf"|\b{MONTH} [0-3]?\d,? (?:19|20)\d\d\b"  # Dec 3, 2026
    rf"|\b{MONTH} (?:19|20)\d\d\b",  # December 2026
    re.IGNORECASE,
)
RATE = r"(?:events|results|learners|paths|requests|rpcs|calls|rows|queries|ops|steps|items)\s*/\s*(?:s|sec|second)\b"
FIGURE = re.compile(
    rf"\b\d[\d,.]*\s*k?\s*{RATE}"  # 18,200 events/s
    r"|\b(?:went|fell|rose|dropped|improved) from \d"  # went from 18,200 to 23,900
    r"|\b\d+(?:\.\d+)?\s*x (?:faster|slower|speed-?up)"  # 3.2x faster
    r"|\b\d+(?:\.\d+)?\s*(?:ms|us|µs)\b[^.\n]{0,20}\b(?:p50|p90|p95|p99|median|latency)"  # 4.1 ms p99
    r"|\b(?:p50|p90|p95|p99|median|latency)\b[^.\n]{0,20}\b\d+(?:\.\d+)?\s*(?:ms|us|µs)\b",  # p99 of 4.1 ms
    re.IGNORECASE,
)


def comments_and_docstrings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every comment and docstring in the file."""
    source = path.read_text(encoding="utf-8")
    found = [
        (tok.start[0], tok.string)
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None and node.body:
                found.append((node.body[0].lineno, doc))
    return found


def offenders(pattern: re.Pattern[str]) -> list[str]:
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if GENERATED in path.parents:
            continue
        for line, text in comments_and_docstrings(path):
            hits += [f"{path.relative_to(ROOT)}:{line}: {m.group(0)!r}" for m in pattern.finditer(text)]
    return hits


def test_no_comment_or_docstring_carries_a_date() -> None:
    assert offenders(DATE) == []


def test_no_comment_or_docstring_carries_a_benchmark_figure() -> None:
    assert offenders(FIGURE) == []


def test_the_patterns_catch_what_they_are_for() -> None:
    for dated in ("as the service did until 2026-12-03", "re-run 3 December 2026", "Dec 3, 2026", "in November 2026"):
        assert DATE.search(dated), dated
    figures = ("went from 18,200 to 23,900 events/s", "25.7k events/s", "3.2x faster", "4.1 ms p99", "p99 of 12 ms")
    for figure in figures:
        assert FIGURE.search(figure), figure
    for timeless in ("schema 4 (2 to 4)", "10,000 pages", "BKT with forgetting per day", "0.8 confidence"):
        assert not DATE.search(timeless) and not FIGURE.search(timeless), timeless
