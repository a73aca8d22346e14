"""The sandbox as a user meets it: `gristmill up` with the product's default (bwrap), a worker
that refuses to start when its sandbox cannot run, and the warning of `none`."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Launcher

pytestmark = pytest.mark.slow

SECRET = "e2e-sandbox-secret"
WHO = 'echo "uid=$(id -u) procs=$(ls -d /proc/[0-9]* | wc -l) db=${DATABASE_URL:-none}"\n'


@pytest.mark.timeout(120)
def test_the_default_sandbox_is_bwrap(launch: Launcher) -> None:
    # "auto" is what an unset GRISTMILL_SANDBOX means (the suite's own default is none).
    process = launch.start(
        env={"GRISTMILL_SANDBOX": "auto", "SUPERADMIN_SECRET": SECRET, "DATABASE_URL": ""}
    )
    assert "jobs run in bwrap sandboxes" in process.stderr, process.describe()
    with httpx.Client(
        base_url=f"{process.local_url}/api/w/main",
        headers={"Authorization": f"Bearer {SECRET}"},
        timeout=60,
    ) as client:
        r = client.post("/jobs/run_wait_result/preview", json={"content": WHO, "language": "bash"})
        assert r.status_code == 200, r.text
        fields = dict(part.split("=", 1) for part in r.json().split())
        # nobody inside, whoever runs the worker; bwrap's init, the script and its pipeline
        # are all the processes it sees; no database URL.
        assert fields["uid"] == "65534"
        assert int(fields["procs"]) <= 6 and fields["db"] == "none"


@pytest.mark.timeout(120)
def test_a_worker_whose_sandbox_cannot_run_does_not_start(launch: Launcher) -> None:
    process = launch.start(
        env={"GRISTMILL_SANDBOX": "bwrap", "GRISTMILL_BWRAP_PATH": "/bin/false"}, wait=False
    )
    code = process.wait_exit(90)
    assert code not in (None, 0), process.describe()
    assert "sandbox cannot run on this machine" in process.stderr, process.describe()
    assert "GRISTMILL_SANDBOX=none" in process.stderr


@pytest.mark.timeout(120)
def test_no_sandbox_is_a_warning_at_start(launch: Launcher) -> None:
    process = launch.start(env={"GRISTMILL_SANDBOX": "none"})
    assert "GRISTMILL_SANDBOX=none: jobs run unisolated" in process.stderr, process.describe()
