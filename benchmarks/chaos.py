"""The chaos suite (issue 15, point 8): load on real platforms while something fails, then an
account of every job, one table.

    uv run python benchmarks/chaos.py            # every experiment (~4 minutes)
    uv run python benchmarks/chaos.py --small    # the one-machine experiments, short (~1 minute)
    uv run python benchmarks/chaos.py --json     # the outcomes as JSON (for tests)

One machine (`gristmill up` on a private data directory, embedded Postgres):
- kill -9 of a `gristmill worker` process (its process group) under load, beside `up`'s worker;
- kill -9 of the embedded Postgres under `up` (whatever restarts it: today nothing);
- SIGTERM to `up` under load with `run_wait_result` callers, then `up` started again.

Many hosts (needs root and network namespaces; not with --small: tests/e2e/test_multihost.py
runs it in CI): a worker host killed, a worker host cut off for longer than
ZOMBIE_JOB_TIMEOUT, Postgres away for longer than ZOMBIE_JOB_TIMEOUT, a server restarted.

Columns: docs/reliability.md, "Chaos suite and many hosts" (and gristmill.testing.chaos).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from gristmill.testing import chaos, hosts


def main() -> int:
    parser = argparse.ArgumentParser(
        description="The chaos suite: load while something fails, one table."
    )
    parser.add_argument("--small", action="store_true", help="short one-machine runs (CI)")
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    parser.add_argument(
        "--only", choices=["one-machine", "many-hosts"], help="run one group of experiments"
    )
    args = parser.parse_args()
    # SIGTERM unwinds like an exception: every platform, Postgres and host started so far is
    # stopped and removed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    outcomes: list[chaos.Outcome] = []
    extra: dict[str, object] = {}
    if args.only != "many-hosts":
        outcomes += chaos.run_single_machine(small=args.small, log=log)
    if not args.small and args.only != "one-machine":
        reason = hosts.unavailable_reason()
        if reason is None:
            report = chaos.run_multihost(rate=10.0, log=log)
            outcomes += report.outcomes
            extra = {"ticks": report.ticks, "duplicate_ticks": report.duplicate_ticks}
            log(f"schedule: {report.ticks} ticks, {report.duplicate_ticks} fired twice")
        else:
            outcomes.append(chaos.Outcome("many hosts", notes=[f"not run: {reason}"]))
    if args.json:
        print(chaos.to_json(outcomes, extra))
    else:
        print(chaos.table(outcomes))
        if extra:
            print(
                f"\nSchedule ticking every second across the two servers: {extra['ticks']} "
                f"ticks, {extra['duplicate_ticks']} fired twice."
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
