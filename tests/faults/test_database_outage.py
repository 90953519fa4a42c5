"""PostgreSQL unreachable for a while: Hearth reaches its database through a TCP proxy the test cuts
(open connections dropped, new ones refused) and restores, while members post and clinicians call
the API. The test reads and writes the database directly, past the proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge.db import make_engine
from tests.conftest import PG_ADMIN_URL, _drop_pg_database, _fresh_pg_database, _pg_available
from tests.e2e.conftest import Stack, hearth_room, throwaway_stack
from tests.e2e.escalation_staff import CLINICIAN, sign_in, staff_room
from tests.e2e.matrix import wait_for
from tests.faults.conftest import fault_overrides
from tests.faults.tcp_proxy import CuttableProxy
from tests.faults.traffic import (
    Ledger,
    Traffic,
    alerts_by_escalation,
    check_exactly_once,
    commit_escalation,
    wait_until_settled,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

OUTAGE_SECONDS = 8


@pytest.fixture(scope="module")
def proxied(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[tuple[Stack, CuttableProxy]]:
    if not _pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    direct_url, name = _fresh_pg_database(PG_ADMIN_URL)
    proxy = CuttableProxy(("127.0.0.1", 5432))
    through_proxy = direct_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    assert through_proxy != direct_url, "the test database URL must name 127.0.0.1:5432"
    root = Path(tmp_path_factory.mktemp("faults-pg"))
    direct = make_engine(direct_url)
    try:
        with throwaway_stack(root, through_proxy, fault_overrides(model_cache)) as hs:
            hs.engine.dispose()
            hs.engine = direct  # the test's own reads and writes never go through the proxy
            yield hs, proxy
    finally:
        proxy.close()
        direct.dispose()
        _drop_pg_database(PG_ADMIN_URL, name)


def test_postgresql_unreachable_answers_503_and_loses_nothing(
    proxied: tuple[Stack, CuttableProxy], record_counts
) -> None:
    """While PostgreSQL cannot be reached: the staff API answers 503 with the reason, /healthz names
    the database, members' messages are delivered (the gate fails open). An escalation committed
    meanwhile (by another replica's gate, say) and every crisis posted meanwhile are alerted once when
    the database is back; every message is screened; no escalation lacks its outbox rows."""
    hs, proxy = proxied
    staff = staff_room(hs)
    token = sign_in(hs, CLINICIAN)
    api = httpx.Client(
        base_url=hs.layout.hearth_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    room = hearth_room(hs)
    traffic = Traffic.join(hs, room, crises=2, talkers=2)
    earlier = hs.member("earlier")
    earlier.join(room)
    before = Traffic(room, [], [earlier]).send(
        "ordinary", earlier, "hello all, checking in before the outage"
    )
    assert before is not None
    wait_until_settled(hs, [before], timeout=60)
    assert api.get("/api/escalations").status_code == 200

    proxy.cut()
    try:
        t0 = time.monotonic()
        r = api.get("/api/escalations")
        answered = time.monotonic() - t0
        assert r.status_code == 503, r.text
        assert r.json()["errcode"] == "HEARTH_DATABASE_UNAVAILABLE"
        assert "cannot be reached" in r.json()["error"]
        assert answered < 8, f"an unreachable database must not hold a request for {answered:.1f} s"
        health = httpx.get(f"{hs.layout.hearth_url}/healthz", timeout=10)
        assert health.status_code == 503
        assert "database" in health.json()["down"]
        raised_meanwhile = commit_escalation(hs.engine, room, earlier.user_id, before.event_id)
        traffic.send_all(traffic.plan(2), rate=2.0)
        assert len(traffic.sent) == 4
        assert not traffic.refused
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - t0)))
    finally:
        proxy.restore()
    ledger = wait_until_settled(hs, traffic.sent, timeout=120)
    counts = check_exactly_once(hs, traffic, staff, ledger)
    wait_for(
        lambda: (
            next(e for e in Ledger.read(hs, [before]).escalations if e.id == raised_meanwhile).alert_event_id
        ),
        timeout=60,
        what="the escalation committed during the outage to be alerted",
    )
    assert alerts_by_escalation(hs, staff)[raised_meanwhile] == 1
    assert api.get("/api/escalations").status_code == 200
    wait_for(
        lambda: httpx.get(f"{hs.layout.hearth_url}/healthz", timeout=10).status_code == 200,
        timeout=60,
        what="/healthz to be 200 again",
    )
    record_counts("PostgreSQL unreachable (proxy cut)", counts)
