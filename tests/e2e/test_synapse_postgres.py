"""Synapse on PostgreSQL (production): `hearth stack up --synapse-database URL` renders, creates and uses it."""

from __future__ import annotations

import secrets

import httpx
import pytest

from bridge import stack
from tests.conftest import PG_ADMIN_URL, _drop_pg_database


def test_a_malformed_synapse_database_url_is_refused_with_the_reason(tmp_path):
    layout = stack.StackLayout(tmp_path)
    with pytest.raises(stack.StackError, match="postgresql://"):
        stack.prepare(layout, synapse_database="mysql://root@127.0.0.1/synapse")
    with pytest.raises(stack.StackError, match="names no database"):
        stack.prepare(layout, synapse_database="postgresql://postgres@127.0.0.1:5432/")
    assert not layout.synapse_database_file.exists()


@pytest.mark.postgres
def test_synapse_runs_on_postgresql_and_remembers_it(tmp_path, pg_server):
    name = f"hearth_synapse_{secrets.token_hex(4)}"
    url = PG_ADMIN_URL.replace("+psycopg", "").rsplit("/", 1)[0] + f"/{name}"
    layout = stack.StackLayout(tmp_path, hs_port=stack.free_port(), hearth_port=stack.free_port())
    try:
        stack.create_synapse_database(url)
        stack.create_synapse_database(url)  # idempotent
        stack.prepare(layout, synapse_database=url)
        stack.prepare(layout)  # a later `make up` without the option keeps PostgreSQL
        assert "name: psycopg2" in layout.homeserver_yaml.read_text()
        assert layout.synapse_database_file.stat().st_mode & 0o077 == 0
        stack.start_synapse(layout)
        try:
            token = stack.register_user(layout, "pgmember", secrets.token_hex(8))
            assert token
            r = httpx.get(
                f"{layout.hs_url}/_matrix/client/v3/account/whoami",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert r.json()["user_id"] == "@pgmember:localhost"
            import psycopg

            with psycopg.connect(url) as conn:  # the account lives in PostgreSQL, not in a SQLite file
                assert conn.execute(
                    "SELECT count(*) FROM users WHERE name = %s", ("@pgmember:localhost",)
                ).fetchone() == (1,)
            assert not (layout.synapse_dir / "homeserver.db").exists()
            # A server without autovacuum (this build machine's) gets its statistics refreshed at
            # start-up, so Synapse's queries keep their index plans; with autovacuum nothing is done.
            with psycopg.connect(url, autocommit=True) as conn:
                autovacuum_off = conn.execute("SHOW autovacuum").fetchone() == ("off",)
                before = conn.execute(
                    "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'users'"
                ).fetchone()
            assert stack.refresh_planner_statistics(url) is autovacuum_off
            if autovacuum_off:
                with psycopg.connect(url) as conn:
                    after = conn.execute(
                        "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'users'"
                    ).fetchone()
                assert after is not None
                assert after[0] is not None
                assert before is None or before[0] is None or after[0] > before[0]
        finally:
            stack.stop_synapse(layout)
    finally:
        _drop_pg_database(PG_ADMIN_URL, name)
