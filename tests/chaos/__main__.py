"""``python -m tests.chaos``: run faults under load and report (see ``tests/chaos/__init__.py``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from .runner import FAULTS, RECOVERY_LIMIT_S, FaultReport, Plan, Rig, postgres_available, run_fault


def _table(reports: list[FaultReport]) -> str:
    lines = [
        "| database | fault | injected | acknowledged (during fault) | lost | duplicated | retried (stored before) "
        "| 5xx/no answer during fault (orders; totals) | recovery s (API; viewer) | backwards | ok |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in reports:
        orders = ", ".join(f"{k}×{v}" for k, v in r.failures_during_fault.get("orders", {}).items()) or "none"
        totals = ", ".join(f"{k}×{v}" for k, v in r.failures_during_fault.get("totals", {}).items()) or "none"
        lines.append(
            f"| {r.database} | {r.fault} | {r.injected} | {r.acknowledged:,} ({r.acknowledged_during_fault:,}) "
            f"| {r.lost} | {r.duplicated} | {r.retried_requests} ({r.stored_before_retry}) | {orders}; {totals} "
            f"| {r.recovery_s} ({r.api_recovery_s}; {r.viewer_recovery_s}) | {'yes' if r.went_backwards else 'no'} "
            f"| {'yes' if r.ok else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--fault", default="all", help=f"all, or a comma-separated list of: {', '.join(FAULTS)}")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both",
                        help="both: SQLite, then PostgreSQL (if its binaries are installed)")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of load per fault (default 60)")
    parser.add_argument("--down-seconds", type=float, default=3,
                        help="how long Redis (redis-shutdown) or PostgreSQL (pg-immediate) stays down (default 3)")
    parser.add_argument("--freeze-seconds", type=float, default=10, help="redis-freeze duration (default 10)")
    parser.add_argument("--clients", type=int, default=4, help="client threads posting orders (default 4)")
    parser.add_argument("--pause", type=float, default=0.02, help="each client's pause between requests, s")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn gevent workers (default 2)")
    parser.add_argument("--report", type=Path, help="write every figure of every run to this JSON file")
    parser.add_argument("--workdir", type=Path, help="keep logs and data here (default: a temporary directory)")
    args = parser.parse_args(argv)

    faults = list(FAULTS) if args.fault == "all" else [f.strip() for f in args.fault.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in databases and not postgres_available():
        if args.database == "postgresql":
            parser.error("no PostgreSQL server binaries (initdb, pg_ctl) found")
        print("no PostgreSQL server binaries: SQLite only", file=sys.stderr)
        databases.remove("postgresql")
    plan = Plan(seconds=args.seconds, down_s=args.down_seconds, freeze_s=args.freeze_seconds,
                clients=args.clients, pause_s=args.pause)

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    reports: list[FaultReport] = []
    with tempfile.TemporaryDirectory(prefix="livesale-chaos-") as tmp:
        for database in databases:
            workdir = (args.workdir or Path(tmp)) / database
            log(f"{database}: starting a private Redis, database and server ({args.workers} workers) in {workdir}")
            with Rig(workdir, database=database, workers=args.workers) as rig:
                for fault in faults:
                    if not rig.supports(fault):
                        log(f"{database}: {fault} runs on PostgreSQL only; skipped")
                        continue
                    reports.append(run_fault(rig, fault, plan, log=log))
    print(_table(reports))
    failed = [r for r in reports if not r.ok]
    for r in failed:
        print(f"\n{r.database} {r.fault} FAILED: {json.dumps(r.as_dict(), ensure_ascii=False, indent=1)}")
    if args.report:
        args.report.write_text(json.dumps({
            "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": " ".join([".venv/bin/python -m tests.chaos", *(argv if argv is not None else sys.argv[1:])]),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
            "plan": dataclasses.asdict(plan), "workers": args.workers, "recovery_limit_s": RECOVERY_LIMIT_S,
            "runs": [r.as_dict() for r in reports],
        }, ensure_ascii=False, indent=1) + "\n")
    return 1 if failed or not reports else 0


if __name__ == "__main__":
    sys.exit(main())
