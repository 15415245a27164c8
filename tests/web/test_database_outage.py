"""While the database cannot be reached, every request is a 503 with Retry-After, never a 500.

The outage is real: on SQLite the database file is replaced by a directory (no connection can open
it), on PostgreSQL the test database stops accepting connections and the app's are terminated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.conftest import Api
from tests.web.test_operations import delta, scrape
from tests.web.test_pages import login


@contextlib.contextmanager
def database_down(store: Any) -> Iterator[None]:
    engine: sa.Engine = store.db
    url = engine.url
    engine.dispose()
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        away = path.with_name(path.name + ".away")
        path.rename(away)
        path.mkdir()
        try:
            yield
        finally:
            engine.dispose()
            path.rmdir()
            away.rename(path)
        return
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = url.database
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"),
                     {"n": name})
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
        admin.dispose()
        engine.dispose()


def test_orders_and_reads_answer_503_with_retry_after_while_the_database_is_down(
    host_api: Api, live_session: dict[str, Any], store: Any, client: Any
) -> None:
    url = f"/api/v1/sessions/{live_session['id']}/orders"
    order = {"sku": "APRICOT-5KG", "quantity": 2}
    key = {"Idempotency-Key": "during-outage"}
    assert host_api.post(url, json=order, headers={"Idempotency-Key": "before"}).status_code == 201
    login(client, "host")  # the API's user: a page that needs the database
    before = scrape(client)
    with database_down(store):
        for response in (
            host_api.post(url, json=order, headers=key),
            host_api.get("/api/v1/sessions"),
            host_api.get(url),
        ):
            assert response.status_code == 503, (response.status_code, response.data[:300])
            assert response.headers["Retry-After"] == "2"
            error = response.json["error"]
            assert error["code"] == "unavailable" and "database is unavailable" in error["message"]
            assert response.headers["X-Request-ID"] in error["message"]
        page = client.get(f"/live/{live_session['id']}")
        assert page.status_code == 503 and page.headers["Retry-After"] == "2"
        assert "数据库" in page.text and page.headers["X-Request-ID"] in page.text  # the error page, in Chinese
        assert client.get("/healthz").status_code == 503
    after = scrape(client)
    assert delta(before, after, "livesale_database_unavailable_total{}") == 4  # three API calls and the page
    assert delta(before, after, "livesale_redis_unavailable_total{}") == 0
    # Back: the console's retry records the order once, and the totals are SQL's.
    again = host_api.post(url, json=order, headers=key)
    assert again.status_code == 201, again.json
    assert host_api.post(url, json=order, headers=key).status_code == 200
    totals = host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json
    assert totals["orders"] == 2 and totals["amount_fen"] == 4 * 6980
