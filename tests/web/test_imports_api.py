"""``POST /api/v1/sessions/<id>/imports``: every platform's export, in every encoding and format, imported
through the API as a host would — twice (the second adds nothing), then a later export in which some lines
are refunded. Every figure of every report is compared with sums this test computes from its own sample
lines (``tests/imports_samples.py`` writes the files); skipped rows by row number; a malformed file and a
dry run store nothing; who may import.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from livesale.core import tables as t
from livesale.core.db import write_transaction
from livesale.extensions import backend
from tests.conftest import Api, Users
from tests.imports_samples import FORMATS, PLATFORMS, SampleLine, expected_line_id, export_files, sample_lines

CN = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 6, 1, 20, 0, tzinfo=CN)
END = datetime(2026, 6, 1, 22, 0, tzinfo=CN)
PRODUCTS = [("APPLE-5", "红富士苹果", 6980), ("HONEY-1", "土蜂蜜", 4800), ("RICE-10", "稻花香大米", 123450),
            ("TEA-2", "高山绿茶", 19900)]
SESSION = {"title": "苹果直播", "village": "洛川县", "platform": "douyin",
           "products": [{"sku": s, "name": n, "unit_price_fen": p} for s, n, p in PRODUCTS]}


def ended_session(api: Api, app: Any, body: dict[str, Any] | None = None) -> int:
    """A session of ``api``'s user that ran 20:00-22:00 China time on 1 June 2026."""
    created = api.post("/api/v1/sessions", json=body or SESSION)
    assert created.status_code == 201, created.json
    with write_transaction(backend.store_of(app).db) as conn:
        conn.execute(sa.update(t.live_sessions).where(t.live_sessions.c.id == created.json["id"])
                     .values(status="ended", started_at=START, ended_at=END))
    return int(created.json["id"])


def post_import(api: Api, session_id: int, files: list[tuple[str, bytes]], platform: str, **form: Any) -> Any:
    """The multipart POST a client sends: ``file`` once per file, ``platform`` and the other fields as text."""
    data = MultiDict([("platform", platform), *((k, str(v)) for k, v in form.items())])
    for name, content in files:
        data.add("file", FileStorage(io.BytesIO(content), filename=name, content_type="application/octet-stream"))
    # Encoded here, in memory: the test client spools a body over 500 KB to a temporary file it never closes.
    boundary, body = encode_multipart(data)
    headers = {"Authorization": f"Bearer {api.token}"} if api.token else {}
    return api.client.post(f"/api/v1/sessions/{session_id}/imports", data=body, headers=headers,
                           content_type=f"multipart/form-data; boundary={boundary}")


def stored_lines(app: Any, session_id: int) -> dict[str, tuple[str, str, int, int]]:
    p = t.platform_lines
    with backend.store_of(app).db.connect() as conn:
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in conn.execute(
            sa.select(p.c.line_id, p.c.status, p.c.sku, p.c.quantity, p.c.amount_fen).where(p.c.session_id == session_id))}


def import_records(app: Any, session_id: int) -> list[Any]:
    with backend.store_of(app).db.connect() as conn:
        return conn.execute(sa.select(t.imports).where(t.imports.c.session_id == session_id)
                            .order_by(t.imports.c.id)).all()


# --- what the test expects, from its own lines ----------------------------------------------------------


def sample_set(platform: str, *, prefix: str = "69201", n: int = 24) -> list[SampleLine]:
    """Paid and never-paid lines in the session's time, one paid half an hour before it, two of a product
    the session does not sell, and one line twice."""
    lines = sample_lines(n, start=START + timedelta(minutes=5), minutes=100, statuses=("paid", "paid", "paid", "not_paid"),
                         prefix=prefix)
    early = dataclasses.replace(sample_lines(1, start=START - timedelta(minutes=30), prefix=prefix + "9")[0])
    unknown = [dataclasses.replace(x, product_name="野生菌", spec="干货", merchant_code="MUSH-1", amount_fen=3300 * x.quantity)
               for x in sample_lines(2, start=START + timedelta(minutes=50), prefix=prefix + "8")]
    return [*lines[:6], early, *lines[6:12], unknown[0], lines[2], *lines[12:], unknown[1]]


@dataclasses.dataclass
class Expected:
    rows: int
    added: list[SampleLine]
    skipped: list[dict[str, Any]]
    unmatched: list[dict[str, Any]]


def expect(platform: str, lines: list[SampleLine], *, skus: Iterable[str], window_minutes: int = 10) -> Expected:
    """What an import of ``lines`` into an empty session must report (row = position + 2: the header is row 1)."""
    skus = set(skus)
    seen: set[str] = set()
    added, skipped, unmatched = [], [], {}
    low, high = START - timedelta(minutes=window_minutes), END + timedelta(minutes=window_minutes)
    for i, line in enumerate(lines):
        row, line_id = i + 2, expected_line_id(platform, line, lines)
        if line_id in seen:
            skipped.append({"row": row, "reason": "duplicate_in_file"})
            continue
        seen.add(line_id)
        if line.status == "not_paid":
            skipped.append({"row": row, "reason": "not_paid"})
        elif line.paid_at is None or not low <= line.paid_at <= high:
            skipped.append({"row": row, "reason": "outside_window"})
        elif line.merchant_code not in skus:
            skipped.append({"row": row, "reason": "unmatched_product"})
            spec = "" if platform == "generic" else line.spec
            name = f"{line.product_name} ({spec})" if spec else line.product_name
            unmatched.setdefault((name, line.merchant_code), []).append(row)
        else:
            added.append(line)
    return Expected(len(lines), added, skipped,
                    [{"name": name, "code": code, "rows": rows} for (name, code), rows in unmatched.items()])


def sha256_of(files: list[tuple[str, bytes]]) -> str:
    digests = [hashlib.sha256(content).hexdigest() for _, content in files]
    return digests[0] if len(digests) == 1 else hashlib.sha256("".join(d + "\n" for d in digests).encode()).hexdigest()


def figures(lines: Iterable[SampleLine]) -> dict[str, int]:
    lines = list(lines)
    return {"orders": len(lines), "items": sum(x.quantity for x in lines), "amount_fen": sum(x.amount_fen for x in lines)}


# --- every platform, every format ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_import_twice_then_a_later_export_with_refunds(app: Any, host_api: Api, platform: str, fmt: str) -> None:
    session_id = ended_session(host_api, app)
    lines = sample_set(platform)
    want = expect(platform, lines, skus=(s for s, _, _ in PRODUCTS))
    assert want.added and want.unmatched and len({s["reason"] for s in want.skipped}) == 4  # the test covers them all
    files = export_files(platform, lines, fmt=fmt, seed=len(fmt))

    dry = post_import(host_api, session_id, files, platform, dry_run=1)
    assert dry.status_code == 200, dry.json
    report = {"dry_run": True, "platform": platform, "rows": want.rows, "added": len(want.added), "repeated": 0,
              "refunded": 0, "amount_added_fen": sum(x.amount_fen for x in want.added), "skipped": want.skipped,
              "unmatched_products": want.unmatched}
    assert dry.json == report
    assert stored_lines(app, session_id) == {} and import_records(app, session_id) == []

    first = post_import(host_api, session_id, files, platform)
    assert first.status_code == 201, first.json
    assert first.json == {**report, "dry_run": False, "import_id": first.json["import_id"]}
    lines_now = stored_lines(app, session_id)
    assert set(lines_now) == {f"{platform}:{expected_line_id(platform, x, lines)}" for x in want.added}
    assert {(v[1], v[2], v[3]) for v in lines_now.values()} == {(x.merchant_code, x.quantity, x.amount_fen)
                                                                for x in want.added}

    second = post_import(host_api, session_id, files, platform)
    assert second.status_code == 201
    assert (second.json["added"], second.json["repeated"], second.json["refunded"],
            second.json["amount_added_fen"]) == (0, len(want.added), 0, 0)

    # A day later: the same orders, a third of the imported ones refunded, and new ones.
    refunded = {id(x) for x in want.added[::3]}
    later = [dataclasses.replace(x, status="refunded") if id(x) in refunded else x for x in lines]
    new = sample_lines(5, start=START + timedelta(minutes=90), minutes=20, prefix="69307")
    later_files = export_files(platform, later + new, fmt=fmt, seed=len(fmt) + 1)
    third = post_import(host_api, session_id, later_files, platform)
    assert third.status_code == 201, third.json
    assert (third.json["added"], third.json["refunded"], third.json["repeated"]) == (
        len(new), len(refunded), len(want.added) - len(refunded))
    assert third.json["amount_added_fen"] == sum(x.amount_fen for x in new)

    paid = [x for x in want.added if id(x) not in refunded] + new
    records = import_records(app, session_id)
    assert [r.before for r in records] == [figures([]), figures(want.added), figures(want.added)]
    assert [r.after for r in records] == [figures(want.added), figures(want.added), figures(paid)]
    assert records[0].sha256 == sha256_of(files) and records[2].sha256 == sha256_of(later_files)
    assert records[0].filename == ", ".join(name for name, _ in files)
    assert records[0].report == {k: v for k, v in first.json.items() if k != "import_id"}
    statuses = stored_lines(app, session_id)
    assert sorted(k for k, v in statuses.items() if v[0] == "refunded") == sorted(
        f"{platform}:{expected_line_id(platform, x, lines)}" for x in want.added if id(x) in refunded)


def test_the_window_is_a_parameter(app: Any, host_api: Api) -> None:
    session_id = ended_session(host_api, app)
    lines = sample_set("kuaishou")
    files = export_files("kuaishou", lines)
    for window in (0, 10, 31, 1440):
        r = post_import(host_api, session_id, files, "kuaishou", dry_run="1", window_minutes=window)
        assert r.status_code == 200
        want = expect("kuaishou", lines, skus=(s for s, _, _ in PRODUCTS), window_minutes=window)
        assert (r.json["added"], r.json["skipped"]) == (len(want.added), want.skipped), window
    for bad in ("-1", "1441", "ten", "1.5"):
        r = post_import(host_api, session_id, files, "kuaishou", window_minutes=bad)
        assert (r.status_code, r.json["error"]["field"]) == (422, "window_minutes"), bad
    assert import_records(app, session_id) == []


def test_a_saved_mapping_imports_the_unmatched_lines(app: Any, host_api: Api) -> None:
    session_id = ended_session(host_api, app)
    lines = sample_set("douyin")
    files = export_files("douyin", lines)
    want = expect("douyin", lines, skus=(s for s, _, _ in PRODUCTS))
    with write_transaction(backend.store_of(app).db) as conn:
        conn.execute(sa.insert(t.product_mappings).values(village="洛川县", platform="douyin", platform_name="野生菌",
                                                          spec="干货", sku="TEA-2"))
    r = post_import(host_api, session_id, files, "douyin")
    mushrooms = [x for x in lines if x.merchant_code == "MUSH-1"]
    assert r.json["unmatched_products"] == [] and r.json["added"] == len(want.added) + len(mushrooms)
    assert r.json["amount_added_fen"] == sum(x.amount_fen for x in want.added + mushrooms)


# --- refusals store nothing ------------------------------------------------------------------------------

GENERIC_HEADER = "external_id,sku,name,quantity,amount_yuan,paid_at,province,city,status\r\n"


@pytest.mark.parametrize("name, content, field", [
    ("orders.csv", (GENERIC_HEADER + "1,APPLE-5,苹果,1,69.80,2026-06-01 20:30:00,浙江省,杭州市,paid\r\n"
                    "2,APPLE-5,苹果,1,六十九,2026-06-01 20:31:00,浙江省,杭州市,paid\r\n").encode(), None),
    ("orders.csv", "订单,金额\r\n1,2\r\n".encode("gb18030"), None),
    ("orders.xlsx", b"PK\x03\x04 not really a workbook", None),
    ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, None),
    ("orders.csv", b"", "file"),
])
def test_a_file_that_cannot_be_read_stores_nothing(app: Any, host_api: Api, name: str, content: bytes,
                                                   field: str | None) -> None:
    session_id = ended_session(host_api, app)
    r = post_import(host_api, session_id, [(name, content)], "generic")
    assert r.status_code == 422, r.json
    assert r.json["error"]["code"] in ("invalid", "unreadable_export") and r.json["error"]["message"]
    if field:
        assert r.json["error"]["field"] == field
    assert stored_lines(app, session_id) == {} and import_records(app, session_id) == []


def test_the_bad_amount_is_named_by_row_and_column(app: Any, host_api: Api) -> None:
    session_id = ended_session(host_api, app)
    content = (GENERIC_HEADER + "1,APPLE-5,苹果,1,69.80,2026-06-01 20:30:00,浙江省,杭州市,paid\r\n"
               "2,APPLE-5,苹果,1,六十九,2026-06-01 20:31:00,浙江省,杭州市,paid\r\n").encode()
    r = post_import(host_api, session_id, [("orders.csv", content)], "generic")
    error = r.json["error"]
    said = f"{error['message']} {error.get('field', '')}"
    assert "3" in said and "amount_yuan" in said, error


def test_what_is_asked_is_checked(app: Any, host_api: Api) -> None:
    session_id = ended_session(host_api, app)
    files = export_files("generic", sample_set("generic"))
    for form, field in (({"platform": "youzan"}, "platform"), ({"platform": ""}, "platform"),
                        ({"platform": "generic", "dry_run": "maybe"}, "dry_run"),
                        ({"platform": "generic", "dryrun": "1"}, "dryrun")):  # misspelt: refused, not ignored
        r = post_import(host_api, session_id, files, **form)
        assert (r.status_code, r.json["error"]["field"]) == (422, field), form
    r = host_api.client.post(f"/api/v1/sessions/{session_id}/imports", data={"platform": "generic"},
                             headers={"Authorization": f"Bearer {host_api.token}"})
    assert (r.status_code, r.json["error"]["field"]) == (422, "file")
    r = host_api.post(f"/api/v1/sessions/{session_id}/imports", json={"platform": "generic"})
    assert (r.status_code, r.json["error"]["field"]) == (422, "file")
    three = files * 3
    r = post_import(host_api, session_id, three, "generic")
    assert (r.status_code, r.json["error"]["field"]) == (422, "file")
    assert import_records(app, session_id) == []


def test_an_export_larger_than_the_json_limit_is_taken(app: Any, host_api: Api) -> None:
    """The API's JSON bodies stop at MAX_CONTENT_LENGTH (1 MB); exports have their own limit."""
    session_id = ended_session(host_api, app)
    lines = sample_lines(6000, start=START + timedelta(minutes=1), minutes=110)
    files = export_files("douyin", lines)
    assert len(files[0][1]) > app.config["MAX_CONTENT_LENGTH"]
    r = post_import(host_api, session_id, files, "douyin", dry_run=1)
    assert r.status_code == 200 and r.json["added"] == 6000
    app.config["IMPORT_MAX_BYTES"] = 1000
    r = post_import(host_api, session_id, files, "douyin", dry_run=1)
    assert (r.status_code, r.json["error"]["code"]) == (413, "too_large")


# --- who may ----------------------------------------------------------------------------------------------


def test_who_may_import(app: Any, users: Users, host_api: Api) -> None:
    session_id = ended_session(host_api, app)
    files = export_files("generic", sample_set("generic"))
    for role, name in (("official", "official"), ("host", "host-2")):
        for dry in ("1", "0"):
            r = post_import(users.api(role, name), session_id, files, "generic", dry_run=dry)
            assert (r.status_code, r.json["error"]["code"]) == (403, "forbidden"), (role, dry)
    r = post_import(Api(app.test_client(), None), session_id, files, "generic")
    assert r.status_code == 401
    r = post_import(host_api, 424242, files, "generic")
    assert r.status_code == 404
    assert stored_lines(app, session_id) == {} and import_records(app, session_id) == []
    r = post_import(users.api("admin"), session_id, files, "generic")
    assert r.status_code == 201 and r.json["added"] > 0
    assert import_records(app, session_id)[0].user_id is not None


@pytest.mark.parametrize(("lang", "said"), [
    ("zh", "无法读取文件：第 3 行，“amount_yuan”列：'六十九' 不是以元计的金额"),
    ("en", "row 3, column “amount_yuan”: '六十九' is not an amount in yuan"),
])
def test_the_page_says_what_is_wrong_with_a_file_in_its_language(
    app: Any, client: Any, users: Users, host_api: Api, lang: str, said: str
) -> None:
    import re

    from tests.web.test_pages import login

    session_id = ended_session(host_api, app)
    login(client, "host")
    page = client.get(f"/?lang={lang}")  # (this test's session has no results: its report is not the point)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
    content = (GENERIC_HEADER + "1,APPLE-5,苹果,1,69.80,2026-06-01 20:30:00,浙江省,杭州市,paid\r\n"
               "2,APPLE-5,苹果,1,六十九,2026-06-01 20:31:00,浙江省,杭州市,paid\r\n").encode()
    r = client.post(f"/sessions/{session_id}/imports", data={
        "csrf_token": token, "platform": "generic", "file": (io.BytesIO(content), "orders.csv")},
        content_type="multipart/form-data")
    assert r.status_code in (302, 303), r.text[:300]
    shown = client.get(f"/?lang={lang}").text  # the refusal is flashed onto the next page
    assert said.replace("'", "&#39;") in shown, shown[shown.find("flash"):][:400]
    assert not stored_lines(app, session_id)
