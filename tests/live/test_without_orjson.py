"""Without orjson (no wheel for Python 3.15 yet) livesale gives the same answers, from the standard json.

orjson is hidden from a child Python by a ``sitecustomize`` that refuses
``import orjson``, as on a Python where it is not installed: the child runs
the JSON-answer tests, and re-encodes the exact objects the app encoded for
a whole session's answers (and its log lines) here, with orjson, to compare
the bytes.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from livesale import json_codec
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[2]

BLOCK_ORJSON = '''
import sys

class _NoOrjson:
    """As on a Python for which orjson publishes no wheel."""

    def find_spec(self, name, path=None, target=None):
        if name == "orjson" or name.startswith("orjson."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoOrjson())
'''

ENCODE = '''
import pickle, sys
from livesale import json_codec
assert not json_codec.FAST, "orjson was not hidden"
with open(sys.argv[1], "rb") as f:
    corpus = pickle.load(f)
with open(sys.argv[2], "wb") as f:
    pickle.dump([json_codec.dumps(obj, default=default) for obj, default in corpus], f)
'''


def without_orjson(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "no-orjson"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCK_ORJSON)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def test_orjson_is_hidden_from_the_child(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import orjson"], env=without_orjson(tmp_path),
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 1 and "No module named 'orjson'" in done.stderr


@pytest.mark.skipif(not json_codec.FAST, reason="orjson is not installed here: nothing to compare with")
def test_every_answer_of_a_session_is_the_same_bytes_without_orjson(
    host_api: Api, live_session: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus: list[tuple[Any, Any]] = []
    encode = json_codec.dumps

    def recording(obj: Any, *, default: Any = None) -> bytes:
        corpus.append((obj, default))
        return encode(obj, default=default)

    monkeypatch.setattr(json_codec, "dumps", recording)
    sid = live_session["id"]
    base = f"/api/v1/sessions/{sid}"
    answers = [
        host_api.post(f"{base}/orders", json={"sku": "APRICOT-5KG", "quantity": 2, "buyer_region": "浙江杭州"},
                      headers={"Idempotency-Key": "k-1"}),
        host_api.post(f"{base}/orders", json={"sku": "APRICOT-5KG", "quantity": 2, "buyer_region": "浙江杭州"},
                      headers={"Idempotency-Key": "k-1"}),
        host_api.post(f"{base}/orders", json={"orders": [{"sku": "DRIED-1KG", "quantity": 1, "external_id": "b-1"},
                                                         {"sku": "APRICOT-5KG", "quantity": 3}]}),
        host_api.post(f"{base}/orders", json={"sku": "APRICOT-5KG", "quantity": 0}),
        host_api.post(f"{base}/orders", data=b"{not json", headers={"Content-Type": "application/json"}),
        host_api.get(f"{base}/orders"),
        host_api.get(f"{base}/totals"),
        host_api.get(base),
        host_api.get("/api/v1/sessions"),
        host_api.get("/api/v1/sessions/999999"),
        host_api.get("/api/v1/openapi.json"),
    ]
    first_order = answers[0].json["order"]["id"]
    answers.append(host_api.post(f"{base}/orders/{first_order}/refund", json={"reason": "broken box"}))
    answers.append(host_api.post(f"{base}/end"))
    answers.append(host_api.get(f"{base}/results"))
    answers.append(host_api.get(f"/api/v1/compare?sessions={sid}"))
    answers.append(host_api.get("/healthz"))
    assert {a.status_code for a in answers} >= {200, 201, 400, 404, 422}, [a.status_code for a in answers]
    # Whatever the answer, it went through json_codec (so it is compared below).
    encoded = {bytes(obj_bytes) for obj_bytes in (encode(o, default=d) for o, d in corpus)}
    for answer in answers:
        if answer.mimetype == "application/json":
            assert answer.data in encoded, answer.data[:200]

    corpus_file, out_file = tmp_path / "corpus.pickle", tmp_path / "stdlib.pickle"
    corpus_file.write_bytes(pickle.dumps([(o, d if d in (None, str) else None) for o, d in corpus]))
    done = subprocess.run([sys.executable, "-c", ENCODE, str(corpus_file), str(out_file)],
                          env=without_orjson(tmp_path), capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    stdlib = pickle.loads(out_file.read_bytes())
    assert len(stdlib) == len(corpus) >= len(answers)
    for (obj, default), theirs in zip(corpus, stdlib, strict=True):
        assert encode(obj, default=default if default in (None, str) else None) == theirs


def test_the_json_answer_tests_pass_without_orjson(tmp_path: Path) -> None:
    """The API's own tests, run by a Python without orjson."""
    env = without_orjson(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "tests/web/test_orders_api.py", "tests/web/test_validation_api.py", "tests/web/test_compare_api.py",
         "tests/web/test_operations.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert " passed" in done.stdout.strip().splitlines()[-1]
