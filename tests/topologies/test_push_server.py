"""A real server (gunicorn, two gevent workers) on each topology pushes exact totals to Socket.IO viewers.

Two workers need the Socket.IO message queue. Behind Sentinel it is the app's
own URL (the queue follows the master too). On a cluster it cannot be: the
queue is pub/sub on one server, so ``LIVESALE_SOCKETIO_MESSAGE_QUEUE`` names
one node of the cluster as a plain ``redis://`` URL (a PUBLISH on any node
reaches subscribers on every node), as docs/deploy.md says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import ServerProcess, Users
from tests.live.conftest import PRICE, Viewer, post_orders

from .services import RedisCluster, Topology


def test_two_workers_push_exact_totals_to_viewers_on_either(
    topology: Topology, database_url: str, redis_url: str, tmp_path: Path, users: Users, live_session: dict[str, Any]
) -> None:
    queue = f"redis://127.0.0.1:{topology.processes[0].port}/0" if isinstance(topology, RedisCluster) else ""
    server = ServerProcess(database_url=database_url, redis_url=redis_url, instance=tmp_path / "instance",
                           workers=2, message_queue=queue)
    viewers: list[Viewer] = []
    try:
        server.start()
        token = users.token("host")
        sid = live_session["id"]
        for _ in range(4):  # the kernel spreads their connections over both workers
            viewers.append(Viewer().connect(server.url, token))
            viewers[-1].join({"session": sid})
            viewers[-1].wait_totals(lambda d: d["orders"] == 0, timeout=10)
        quantities = [1 + i % 3 for i in range(40)]
        post_orders(server.url, token, sid, quantities, threads=4)
        for viewer in viewers:
            final = viewer.wait_totals(lambda d: d["orders"] == 40, timeout=20)
            assert final["amount_fen"] == sum(quantities) * PRICE
            assert viewer.of("error") == []
    finally:
        for viewer in viewers:
            viewer.close()
        server.stop()
