"""The hosts the multi-host test is made of (gristmill.testing.hosts): a process runs in its
host's network namespace, a host's kill ends its forked children too, a cut host reaches
nothing until reconnected, and nothing is left behind. A few seconds, no platform."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gristmill.testing import hosts
from gristmill.testing.pytest_plugin import skip_unless_ci

pytestmark = pytest.mark.slow

# A one-shot TCP client: exit 0 when it connects to ADDRESS:PORT within 1 s.
CONNECT = (
    "import socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)\n"
    "s.close()\n"
)
# A TCP server that accepts forever, and forks a child that sleeps (the kill must end both).
SERVE = (
    "import os, socket, time\n"
    "if os.fork() == 0:\n"
    "    time.sleep(300)\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 7000)); s.listen(16); print('listening', flush=True)\n"
    "while True:\n"
    "    s.accept()[0].close()\n"
)


def _connects(host: hosts.Host, address: str) -> bool:
    process = host.run([sys.executable, "-c", CONNECT, address, "7000"], env=dict(os.environ))
    return process.popen.wait(10) == 0


@pytest.mark.timeout(60)
def test_hosts_run_kill_cut_and_leave_nothing(tmp_path: Path) -> None:
    reason = hosts.unavailable_reason()
    if reason is not None:
        skip_unless_ci(f"hosts need network namespaces here: {reason}")
    with hosts.network(tmp_path) as net:
        server, client = net.add_host("srv"), net.add_host("cli")
        serving = server.run([sys.executable, "-c", SERVE], env=dict(os.environ))
        serving.wait_output("listening", 20)
        # Its own network: its loopback is not the root namespace's.
        assert os.stat(f"/proc/{serving.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        assert _connects(client, server.address)

        client.disconnect()
        assert not _connects(client, server.address)
        client.reconnect()
        assert _connects(client, server.address)

        members = (server.cgroup / "cgroup.procs").read_text().split()
        assert len(members) == 2, members  # the server (nsenter exec()s it) and its child
        server.kill()
        assert serving.popen.poll() is not None
        assert all(not hosts.process_alive(int(pid)) for pid in members)
        assert not _connects(client, server.address)
        names = [server.netns, client.netns]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names), listed
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert net.bridge not in links
    assert not server.cgroup.exists()
