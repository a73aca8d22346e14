"""Hosts made of Linux network namespaces, for tests and benchmarks of many-host deployments.

One bridge in the root namespace is the "switch" (it also carries an address, so that a client
in the root namespace, the test itself, reaches every host). Each host is a network namespace
(``ip netns``) with a veth pair: one end, ``eth0``, inside the host with the host's address, the
other on the bridge. A process runs "on" a host through ``nsenter --net=...``, and inside that
host's own cgroup (v2): killing a host is one write to ``cgroup.kill``, which ends every process
of the host at once, forked children included, the way a machine losing power does. Cutting a
host off the network sets its end of the veth on the bridge down: its TCP connections then
stall without a reset, as behind a failed switch port, until it is set up again.

Everything is made by :class:`Network` and removed by its :meth:`Network.close` (a context
manager), also after a failure; names carry the owning process's id, so that a later run removes
what a killed one left behind (:func:`remove_stale`).

Needs root, ``ip`` (iproute2) and ``nsenter`` (util-linux). The addresses are in 198.18.0.0/15,
the range reserved for network benchmarks (RFC 2544): never a real network's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: Every name this module makes starts with this, followed by the owner's process id.
PREFIX = "gmh"
NETNS_DIR = Path("/run/netns")


class HostsUnavailable(RuntimeError):
    """This machine cannot make hosts (not root, no ``ip``/``nsenter``, no namespaces)."""


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")


def _cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup`` or, on a hybrid
    machine, ``/sys/fs/cgroup/unified``), if it is and supports ``cgroup.kill``."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        parts = line.split()
        if len(parts) > 2 and parts[2] == "cgroup2":
            root = Path(parts[1])
            if (root / "cgroup.procs").exists():
                return root
    return None


def unavailable_reason() -> str | None:
    """Why hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs, a bridge and cgroups)"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` on PATH (Debian: iproute2 / util-linux)"
    if _cgroup2_root() is None:
        return "needs a cgroup v2 hierarchy mounted (to kill every process of a host at once)"
    probe = f"{PREFIX}probe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"cannot create a network namespace: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _owner_alive(name: str) -> bool:
    """Whether the process that made ``name`` (``<PREFIX><pid>-...``) still runs."""
    digits = name[len(PREFIX) :].split("-")[0]
    return not digits.isdigit() or process_alive(int(digits))


def process_alive(pid: int) -> bool:
    """A live process: a zombie is not (a container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def remove_stale() -> None:
    """Remove hosts, bridges and cgroups left by runs whose process no longer exists."""
    if NETNS_DIR.is_dir():
        for entry in NETNS_DIR.iterdir():
            if entry.name.startswith(PREFIX) and not _owner_alive(entry.name):
                _kill_netns_processes(entry)
                subprocess.run(["ip", "netns", "del", entry.name], capture_output=True)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(PREFIX) and not _owner_alive(name):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    root = _cgroup2_root()
    if root is not None:
        for group in root.glob(f"{PREFIX}*"):
            if group.is_dir() and not _owner_alive(group.name):
                _kill_cgroup(group)


def _netns_inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _kill_netns_processes(netns: Path) -> None:
    """SIGKILL every process whose network namespace is ``netns`` (the fallback when a
    process escaped its host's cgroup, and for stale hosts)."""
    inode = _netns_inode(netns)
    if inode is None:
        return
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / "net").st_ino == inode:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def _kill_cgroup(group: Path) -> None:
    """Kill every process of ``group`` at once, wait until it is empty, remove it."""
    if group.is_dir():
        _kill_cgroup_processes(group)
        with contextlib.suppress(OSError):
            group.rmdir()


@dataclass
class Process:
    """A process started on a host; its output goes to ``log``."""

    host: Host
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_output(self, text: str, timeout: float) -> None:
        """Wait until ``text`` is in the process's output; fails on timeout or exit."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.argv[0]} on {self.host.name} exited ({self.popen.returncode}) "
                    f"before saying {text!r}:\n{self.output()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.argv[0]} on {self.host.name} did not say {text!r} within "
                    f"{timeout:g} s:\n{self.output()[-4000:]}"
                )
            time.sleep(0.1)

    def signal(self, sig: signal.Signals) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> float:
        """SIGTERM, then SIGKILL after ``timeout``; the seconds it took to exit."""
        start = time.monotonic()
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(10)
        return time.monotonic() - start


@dataclass
class Host:
    """One network namespace with its address, its cgroup and the processes run on it."""

    network: Network
    name: str
    address: str
    netns: str
    veth: str
    cgroup: Path
    logs: Path
    processes: list[Process] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        log_name: str | None = None,
        cwd: str | Path | None = None,
    ) -> Process:
        """Start ``argv`` on this host (its network namespace and cgroup), in its own
        session, output appended to a log file under the network's directory."""
        # One file per process: a restarted process's readiness is read from its own output.
        log = self.logs / (
            f"{self.name}-{log_name or Path(argv[0]).name}-{len(self.processes) + 1}.log"
        )
        out: IO[bytes] = open(log, "ab")  # noqa: SIM115 - handed to the child, closed below
        procs = self.cgroup / "cgroup.procs"

        def enter_cgroup() -> None:
            # In the child before exec: everything it forks stays in the host's cgroup.
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        try:
            popen = subprocess.Popen(
                ["nsenter", f"--net={NETNS_DIR / self.netns}", "--", *argv],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Only a write before exec: safe although the parent may run threads.
                preexec_fn=enter_cgroup,
            )
        finally:
            out.close()
        process = Process(self, list(argv), popen, log)
        self.processes.append(process)
        return process

    def kill(self) -> None:
        """Kill every process of the host at once (a power loss), and reap ours."""
        _kill_cgroup_processes(self.cgroup)
        _kill_netns_processes(NETNS_DIR / self.netns)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(10)

    def disconnect(self) -> None:
        """Cut the host off the network (its port on the switch goes down)."""
        _run("ip", "link", "set", self.veth, "down")

    def reconnect(self) -> None:
        _run("ip", "link", "set", self.veth, "up")


def _kill_cgroup_processes(group: Path, timeout_s: float = 10.0) -> None:
    with contextlib.suppress(OSError):
        (group / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if "populated 0" in (group / "cgroup.events").read_text():
                return
        except OSError:
            return
        time.sleep(0.02)


class Network:
    """A switch and the hosts on it; :meth:`close` removes them all (use ``with``)."""

    def __init__(self, workdir: Path) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise HostsUnavailable(reason)
        remove_stale()
        root = _cgroup2_root()
        assert root is not None
        self.tag = f"{PREFIX}{os.getpid()}"
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.hosts: dict[str, Host] = {}
        self._cgroup_root = root
        # One /24 per owner process: two runs at once get different subnets (almost always).
        self._subnet = f"198.18.{os.getpid() % 250 + 1}"
        self.bridge = f"{self.tag}-br"
        self.address = f"{self._subnet}.1"
        try:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{self.address}/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        """A new host on the switch, its loopback and its address up."""
        assert len(name) <= 4 and name.isalnum(), "host names are 1-4 letters or digits"
        number = len(self.hosts) + 2
        netns = f"{self.tag}-{name}"
        veth = f"{self.tag}-{name}"  # at most 15 characters: 3 + 7 (a pid) + 1 + 4
        cgroup = self._cgroup_root / netns
        host = Host(self, name, f"{self._subnet}.{number}", netns, veth, cgroup, self.workdir)
        self.hosts[name] = host
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _run("ip", "link", "set", veth, "master", self.bridge)
        _run("ip", "link", "set", veth, "up")
        inside = ("ip", "netns", "exec", netns, "ip")
        _run(*inside, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _run(*inside, "link", "set", "eth0", "up")
        _run(*inside, "link", "set", "lo", "up")
        cgroup.mkdir(exist_ok=True)
        return host

    def close(self) -> None:
        """Kill every host's processes, then remove the hosts, their cgroups and the switch."""
        for host in self.hosts.values():
            host.kill()
            with contextlib.suppress(OSError):
                host.cgroup.rmdir()
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
            subprocess.run(["ip", "link", "del", host.veth], capture_output=True)
        self.hosts.clear()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


@contextlib.contextmanager
def network(workdir: Path) -> Iterator[Network]:
    """A :class:`Network` removed at the end, also when the process is told to stop: SIGTERM
    raises SystemExit so that the ``finally`` runs."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    net = Network(workdir)
    try:
        yield net
    finally:
        net.close()
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


def _serve_postgres(data_dir: str, address: str, hba_file: str) -> None:
    """Run on the Postgres host: the project's embedded cluster, listening on TCP at
    ``address`` too, until SIGTERM (a fast stop) or SIGKILL (a crash)."""
    from gristmill.db.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(
        Path(data_dir),
        fsync=False,
        server_settings=[f"listen_addresses={address}", f"hba_file={hba_file}"],
    )
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pg.start()
    print("postgres host ready", flush=True)
    while not stop:
        time.sleep(0.2)
    pg.stop()


if __name__ == "__main__":
    # python -m gristmill.testing.hosts postgres DATA_DIR ADDRESS HBA_FILE
    if len(sys.argv) == 5 and sys.argv[1] == "postgres":
        _serve_postgres(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: python -m gristmill.testing.hosts postgres DATA_DIR ADDRESS HBA_FILE")
