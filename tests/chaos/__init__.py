"""Fault injection with nothing lost: the reliability proof of issue 7 (see docs/reliability.md).

The promises checked, after any single fault:

1. every order acknowledged with a 2xx is in the database, under its key;
2. the totals shown (totals API, Socket.IO, an order console's answers)
   converge to the SQL sums within 5 s after the fault ends, and never go
   backwards or back to 0 meanwhile (a 503 is allowed, a lower figure is not);
3. a retried order (same ``Idempotency-Key``) counts once.

Faults: ``kill9-app`` (SIGKILL of the gunicorn master and workers, new
server on the same port), ``redis-shutdown`` (SHUTDOWN NOSAVE, restarted
empty), ``redis-flush`` (FLUSHALL), ``redis-freeze`` (SIGSTOP for 10 s),
``pg-immediate`` (``pg_ctl stop -m immediate``, then restarted; PostgreSQL
only).

Every run starts its own services, so nothing shared is harmed: a private
``redis-server`` on a free port, a private SQLite file or a private
PostgreSQL cluster (initdb/pg_ctl run as the ``postgres`` user when we are
root), and real gunicorn servers with gevent workers.

As a library (``tests/chaos/test_faults.py`` does this)::

    from tests.chaos.runner import Plan, Rig, run_fault
    with Rig(workdir, database="postgresql") as rig:
        report = run_fault(rig, "redis-freeze", Plan(seconds=6))
        assert report.ok, report.as_dict()

As a command (a longer run; prints a table, writes every figure as JSON)::

    .venv/bin/python -m tests.chaos --fault all --seconds 60 --report out.json
    .venv/bin/python -m tests.chaos --fault redis-freeze --database sqlite --seconds 30
    .venv/bin/python -m tests.chaos --help

It exits with status 1 if any promise failed.
"""
