"""The API reference generator (tools/proto_doc.py) documents every service method, message,
field, enum and value of the .proto, each with the comment written above it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto" / "luban" / "path" / "v1" / "learning_path.proto"


def test_every_declaration_of_the_proto_is_in_the_reference_with_its_comment(tmp_path: Path) -> None:
    out = tmp_path / "api.md"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "proto_doc.py"), str(PROTO), str(out), "--include", str(ROOT / "proto")],
        check=True,
    )
    page = out.read_text(encoding="utf-8")
    source = PROTO.read_text(encoding="utf-8")

    for method in re.findall(r"^\s*rpc (\w+)\(", source, re.MULTILINE):
        assert f"| `{method}` |" in page, method
    for kind, name in re.findall(r"^(message|enum) (\w+) \{", source, re.MULTILINE):
        assert f"#### {name}\n" in page, (kind, name)
    for value in re.findall(r"^\s*([A-Z][A-Z0-9_]+) = \d+;", source, re.MULTILINE):
        assert f"| `{value}` |" in page, value
    # comments are carried over: a method's, a message's and a field's
    assert "Records one assessment result and returns the updated profile. Idempotent on event_id." in page
    assert "Learner is one student of one college." in page
    assert "| `learner_id` | `string` | Client-chosen id: 1-128 characters of [A-Za-z0-9._:@-]. |" in page
    assert "| `attributes` | map<`string`, `string`> |" in page
