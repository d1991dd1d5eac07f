"""Defaults are fast by construction: every dashboard and default list query reads an index.

The plans are checked with EXPLAIN QUERY PLAN on a small synthetic database (tests/audit/bigdb.py).
SQLite plans the same way at any size here, since nothing collects table statistics; the 100 000
dispute database and the wall times are in `./scripts/bench --only audit-views`.
"""

from __future__ import annotations

import pytest

from serbero_cli.audit import checks, health, metrics, timeline, views
from serbero_cli.store.audit_queries import AuditSettings
from serbero_cli.store.db import open_db
from tests.audit.bigdb import DEFAULT_VIEWS, NOTIFICATIONS_PER_DISPUTE, NOW, build, plan_problems

DISPUTES = 3_000


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("plans") / "serbero.db"
    build(path, DISPUTES)
    return path


def traced(monkeypatch) -> list[str]:
    """Record every statement the audit views run (with bound values expanded)."""
    from serbero_cli.store import audit_queries as queries

    statements: list[str] = []
    real = queries.open_source

    def open_traced(settings):
        source = real(settings)
        source.store.conn.set_trace_callback(statements.append)
        return source

    for module in (views, checks, timeline, health):
        monkeypatch.setattr(module, "open_source", open_traced)
    return statements


@pytest.mark.parametrize("name,view", DEFAULT_VIEWS, ids=[n for n, _ in DEFAULT_VIEWS])
def test_every_dashboard_and_default_list_query_uses_an_index(small_db, monkeypatch, name, view):
    statements = traced(monkeypatch)
    view(AuditSettings.defaults(small_db))
    selects = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert selects
    store = open_db(small_db, readonly=True)
    try:
        for sql in selects:
            plan, problems = plan_problems(store.conn, sql)
            assert not problems, f"{name}: {problems}\n{sql}\n" + "\n".join(plan)
    finally:
        store.close()


def test_a_query_without_an_index_is_caught(small_db):
    """The plan check itself: a filter on a column no index holds is reported as a full scan."""
    store = open_db(small_db, readonly=True)
    try:
        _, problems = plan_problems(
            store.conn, "SELECT COUNT(*) FROM notifications WHERE body LIKE '%x%'"
        )
    finally:
        store.close()
    assert problems and problems[0].startswith("full table scan: SCAN notifications")


def test_dashboard_and_metrics_count_every_row(small_db):
    settings = AuditSettings.defaults(small_db)
    result = views.run_dashboard(settings, now=NOW)
    assert result.document["disputes_total"] == DISPUTES
    assert sum(result.document["notifications"].values()) == DISPUTES * NOTIFICATIONS_PER_DISPUTE
    text = metrics.run_metrics(settings, now=NOW)
    notified = sum(
        int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("serbero_notifications{")
    )
    assert notified == DISPUTES * NOTIFICATIONS_PER_DISPUTE
