"""The CLI's operator-facing edges: help that explains every option, JSON log lines with the
key=value fields, a certificate hint that names agent.id, and the audit tail's formats."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from photonic import cli, tls
from photonic.logfmt import JsonFormatter, KeyValueFormatter, configure_logging
from photonic.server.audit_cli import AuditReader, AuditRow, format_row
from photonic.server.catalog import SqliteCatalog
from photonic.sqlite_db import open_database
from tests.support.pki import TestPki


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    return capsys.readouterr().out


def test_every_option_is_explained_and_subcommands_have_their_own_text(
        capsys: pytest.CaptureFixture[str]) -> None:
    """No option of the commands that had bare ones is left without a help line, and each
    subcommand's --help says what it does instead of echoing the parent's text."""
    top = _help(capsys)
    assert "parses arguments" not in top and "photo folders" in top
    for flag in ("--log-level", "--log-format"):
        assert top.split(flag, 2)[2].strip(), flag  # a help line follows the choices
    seen: set[str] = set()
    for argv, flags in ((("certs", "init"), ("--dir",)), (("certs", "issue"), ("--dir",)),
                        (("status",), ("--config", "--json")),
                        (("conflicts",), ("--config", "--all")),
                        (("verify",), ("--config", "--json")), (("server",), ("--config",)),
                        (("agent",), ("--config",)), (("audit", "tail"), ("--follow",)),
                        (("service", "install"), ("--user", "--print"))):
        text = _help(capsys, *argv)
        assert text not in seen and cli.DESCRIPTION.splitlines()[0] not in text
        seen.add(text)
        options = text.split("options:", 1)[1]
        for flag in flags:
            line = next(ln for ln in options.splitlines() if flag in ln)
            described = line.split(flag, 1)[1].split(maxsplit=1)
            after = options.split(line, 1)[1].splitlines()[0].strip()
            assert len(described) > 1 or after, f"{' '.join(argv)} {flag} is unexplained"


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("photonic.test", logging.INFO, "f.py", 1, msg, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_log_lines_carry_the_same_fields_as_key_value_lines() -> None:
    """`--log-format json` writes one JSON object per line with exactly the key=value line's
    keys; a value with a newline or a quote cannot break the line in either."""
    record = _record("upload done", event="upload_done", agent="lap\ntop", bytes=12, ok=True)
    kv = KeyValueFormatter().format(record)
    js = JsonFormatter().format(record)
    assert "\n" not in kv and "\n" not in js
    obj = json.loads(js)
    assert list(obj) == re.findall(r"(?:^| )(\w+)=", kv)
    assert obj["agent"] == "lap\ntop" and obj["bytes"] == 12 and obj["ok"] is True
    assert obj["ts"].endswith("Z") and obj["level"] == "info" and obj["msg"] == "upload done"


def test_configure_logging_json_applies_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """The json format keeps the per-daemon context (agent id) on every line."""
    out = io.StringIO()
    configure_logging("info", stream=out, log_format="json", component="agent", agent="a1")
    try:
        logging.getLogger("photonic.x").info("hello", extra={"event": "hello"})
    finally:
        configure_logging("info")
    line = json.loads(out.getvalue())
    assert (line["component"], line["agent"], line["event"]) == ("agent", "a1", "hello")


def test_missing_certificate_hint_names_the_agent_id(pki: TestPki, tmp_path: Path) -> None:
    """A cert file named unlike the agent gets a hint that issues for agent.id (and says
    where issue writes), not for the file's stem, which would be another agent."""
    cert = tmp_path / "client.pem"
    problems = tls.certificate_problems(cert, pki.agent_key("laptop"), pki.ca,
                                        agent_id="laptop")
    text = " ".join(str(p) for p in problems)
    assert "photonic certs issue laptop " in text and "issue client" not in text
    assert "laptop.crt" in text
    expired = tmp_path / "old.crt"
    shutil.copy2(pki.expired_cert, expired)
    text = " ".join(str(p) for p in tls.certificate_problems(
        expired, pki.expired_key, pki.ca, agent_id="laptop"))
    assert "certs issue laptop " in text and "--force" in text


def test_audit_rows_format_as_logfmt_and_json(tmp_path: Path) -> None:
    """Rows come oldest first; --follow sees only rows newer than the last one printed; a
    peer-chosen value is escaped in key=value and stays one line in JSON."""
    db = tmp_path / "catalog.db"
    conn = open_database(db, "photonic.server.migrations")
    add = "INSERT INTO audit (ts_ms, actor, action, target, result, detail) VALUES (?,?,?,?,?,?)"
    conn.execute(add, (1_000, "laptop", "SyncBatch", "a b", "ok", "x\ny"))
    conn.execute(add, (2_000, "admin", "ResolveConflicts", "1", "ok", "keep_server"))
    reader = AuditReader(SqliteCatalog.read_only(db))
    rows = reader.last(10)
    assert [r.actor for r in rows] == ["laptop", "admin"] and reader.newer() == []
    conn.execute(add, (3_000, "admin", "SubmitJob", "j1", "ok", ""))
    assert [r.action for r in reader.newer()] == ["SubmitJob"]
    line = format_row(rows[0], as_json=False)
    assert line == ('time=1970-01-01T00:00:01.000Z actor=laptop action=SyncBatch '
                    'target="a b" result=ok detail="x\\ny"')
    assert json.loads(format_row(rows[0], as_json=True))["detail"] == "x\ny"
    with pytest.raises(sqlite3.OperationalError):
        reader.source.audit("x", "y", "z", "ok")  # read-only: the tail can change nothing
    reader.close()
    conn.close()
    assert isinstance(rows[0], AuditRow)
