# pyright: basic
"""The warm parent: a process kept warm for one environment that forks one child per job.

Run inside the sandbox, as the sandbox's unprivileged user, by the environment's own Python
interpreter (``python -I -S -B -u -X utf8 forkserver.py CONFIG_JSON``): standard library only,
nothing of Gristmill is importable there. The worker (:mod:`gristmill.warm.parent`) talks to
it over a socket on descriptor 0; the parent's own output (descriptors 1 and 2) is its log.

The parent never runs a job's code. It loads the runtime's entry module, imports what the
runtime asked it to preload (an environment's packages), checks that it is still a single
thread (a fork copies only the calling thread: a module that started a thread makes the
environment unsafe to fork, and the parent says so and exits), then prepares children
ahead of their jobs:

    parent ─fork─▶ keeper ─unshare(user, pid, mount, ipc, uts, cgroup[, net])─fork─▶ init ─fork─▶ job

The keeper stays in the parent's namespaces, waits for the init and reports how the job
ended; it never runs job code either. The init is PID 1 of a new PID namespace (when it
exits, every process of its job is killed), in a new user namespace that maps only the
sandbox's user, with its own ``/proc`` (showing its job's processes only), a new tmpfs on
``/tmp`` and on its working directory, loopback up in its own network namespace when the job
has no network, no further user namespaces, the recipe's rlimits, every capability dropped
and ``no_new_privs`` set. It forks the job's process (PID 2, as in bwrap's sandboxes), reaps
what the job leaves behind and passes the job's exit status to the keeper. All of that is
done before the job arrives: on the job's path there is one read and the call of the entry.

Messages on descriptor 0 are single datagrams (``SOCK_SEQPACKET``) of JSON:
- worker → parent ``{"op": "prepare", "n": N}``: prepare N more children;
- parent → worker ``{"ready": true, "rss_kb": K, "preloaded": [...], "failed": {...}}`` once,
  or ``{"fatal": MESSAGE}`` before it exits;
- parent → worker ``{"child": SEQ, "rss_kb": K}`` carrying three descriptors: the job socket
  (stream), the keeper's status socket (datagrams) and the read end of the child's output
  (its descriptors 1 and 2, the job's log).
On the status socket the keeper sends ``{"pid": PID}`` with a pidfd of the child (the worker
kills the job through it), then ``{"status": CODE}`` (negative: killed by that signal) once
the child has exited, or ``{"error": MESSAGE}`` when the child could not be prepared.
On the job socket the worker sends a 4-byte big-endian length and the job's JSON
(``{"env": {...}, "payload": {...}}``); the child answers with its result (the bytes a cold
run would write to ``result.json``), optionally followed by a NUL and its exit status in
decimal (the fork server's children do: the job then ends when that arrives, not when the
process has exited), and closes it. With ``exec`` in the configuration (a
runtime that cannot fork safely) the child, once isolated, executes that program instead,
with the job socket as its descriptor 3: the program starts before its job arrives, then
reads the job from descriptor 3 and writes its result there, in the same format.
"""

import contextlib
import ctypes
import gc
import importlib.util
import json
import os
import re
import resource
import selectors
import signal
import socket
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
MB = 1024 * 1024

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source, target, fstype, flags, data):
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {fstype or source or ''} on {target}",
    )


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _rss_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Parent:
    def __init__(self, config):
        self.config = config
        self.control = socket.socket(fileno=0)
        self.limits = config.get("limits") or {}
        self.isolate = bool(config.get("isolate"))
        self.network = bool(config.get("network"))
        self.cwd = config["cwd"]
        self.keepers = set()
        self.seq = 0
        self.entry = None
        self.job_name = ""

    # -- start ------------------------------------------------------------------------------

    def load(self):
        deps = self.config.get("deps")
        if deps:
            import site

            # After the standard library, as the cold wrapper does; runs the .pth files.
            site.addsitedir(deps)
        if self.config.get("entry"):
            spec = importlib.util.spec_from_file_location("_gristmill_entry", self.config["entry"])
            if spec is None or spec.loader is None:
                raise RuntimeError(f"cannot load the entry {self.config['entry']}")
            module = importlib.util.module_from_spec(spec)
            sys.modules["_gristmill_entry"] = module
            spec.loader.exec_module(module)
            self.entry = getattr(module, self.config.get("function") or "warm_run")
        preloaded, failed = [], {}
        for name in self.config.get("preload") or ():
            try:
                importlib.import_module(name)
                preloaded.append(name)
            except BaseException as exc:  # a package's own import error: it stays unloaded
                failed[name] = f"{type(exc).__name__}: {exc}"[:300]
        threads = len(os.listdir("/proc/self/task"))
        if threads != 1:
            raise RuntimeError(
                f"after preloading {', '.join(preloaded) or 'nothing'} this process runs "
                f"{threads} threads: a fork would copy only one, so this environment is not "
                "kept warm"
            )
        # Objects that exist now are never collected: their pages stay shared with children.
        gc.collect()
        gc.freeze()
        return preloaded, failed

    def send(self, message, fds=()):
        data = json.dumps(message).encode()
        if fds:
            socket.send_fds(self.control, [data], list(fds))
        else:
            self.control.send(data)

    # -- loop -------------------------------------------------------------------------------

    def serve(self):
        selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ)
        while True:
            events = selector.select(timeout=1.0)
            self.reap()
            if not events:
                continue
            data = self.control.recv(65536)
            if not data:
                return  # the worker closed the socket: this environment is no longer kept
            message = json.loads(data)
            if message.get("op") == "prepare":
                for _ in range(int(message.get("n", 1))):
                    self.prepare()
            elif message.get("op") == "exit":
                return

    def reap(self):
        for pid in list(self.keepers):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.keepers.discard(pid)

    def prepare(self):
        job_parent, job_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status_parent, status_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        output_read, output_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                self.control.close()
                job_parent.close()
                status_parent.close()
                os.close(output_read)
                self.keeper(job_child, status_child, output_write)
                code = 0
            finally:
                os._exit(code)
        self.keepers.add(pid)
        job_child.close()
        status_child.close()
        os.close(output_write)
        self.seq += 1
        try:
            self.send(
                {"child": self.seq, "rss_kb": _rss_kb()},
                [job_parent.fileno(), status_parent.fileno(), output_read],
            )
        finally:
            job_parent.close()
            status_parent.close()
            os.close(output_read)

    # -- keeper -----------------------------------------------------------------------------

    def keeper(self, job_sock, status_sock, output):
        """In the keeper: enter new namespaces, fork the job's init, report on it."""
        try:
            if self.isolate:
                uid, gid = os.getuid(), os.getgid()
                flags = (
                    CLONE_NEWUSER
                    | CLONE_NEWPID
                    | CLONE_NEWNS
                    | CLONE_NEWIPC
                    | CLONE_NEWUTS
                    | CLONE_NEWCGROUP
                )
                if not self.network:
                    flags |= CLONE_NEWNET
                _check(_libc.unshare(flags), "unshare")
                # Only the sandbox's own user exists in the child's user namespace.
                _write("/proc/self/setgroups", "deny")
                _write("/proc/self/uid_map", f"{uid} {uid} 1")
                _write("/proc/self/gid_map", f"{gid} {gid} 1")
            read_ready, write_ready = os.pipe()
            init = os.fork()
        except BaseException as exc:
            status_sock.send(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
            return
        if init == 0:
            code = 70
            try:
                os.close(read_ready)
                code = self.init(job_sock, write_ready, output, status_sock)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.write(2, f"[gristmill] warm child failed: {exc}\n".encode())
            finally:
                os._exit(code)
        job_sock.close()
        os.close(output)
        os.close(write_ready)
        # The child says it is ready (or fails) before the worker may send it a job.
        problem = os.read(read_ready, 4096).decode(errors="replace")
        os.close(read_ready)
        if problem:
            status_sock.send(json.dumps({"error": problem}).encode())
            os.waitpid(init, 0)
            return
        pidfd = os.pidfd_open(init)
        socket.send_fds(status_sock, [json.dumps({"pid": init}).encode()], [pidfd])
        os.close(pidfd)
        _, status = os.waitpid(init, 0)
        # The init reports the job's status itself as soon as the job's process has ended
        # (its own exit, and the namespace's teardown, stay off the job's path) and then
        # exits 0. Otherwise it was killed (a timeout, a cancel: the worker kills the init,
        # and the namespace with it) or failed: the keeper says how.
        if os.waitstatus_to_exitcode(status) != 0:
            status_sock.send(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode())
        if not self.isolate:
            import shutil  # after the status: the job's end is not delayed by the clean-up

            shutil.rmtree(os.path.join(self.cwd, f"job-{init}"), ignore_errors=True)

    # -- the job's init and the job's process -----------------------------------------------

    def init(self, job_sock, ready_fd, output, status_sock):
        """PID 1 of the job's namespaces: finishes their isolation, forks the job's process,
        reaps every process the job leaves, and reports the job's own exit status. As in
        bwrap's sandboxes the job is not PID 1 (a PID 1 ignores the signals it does not
        handle, so a job could not even kill itself)."""
        try:
            if not self.isolate:
                # No namespace to end the job with: its processes are one process group,
                # which the worker kills at the job's end (as it does a cold job's).
                os.setsid()
            self.isolate_child()
            self.apply_limits()
            self.drop_privileges()
            self.job_name = f"job-{os.getpid()}"
            process = os.fork()
        except BaseException as exc:
            os.write(ready_fd, f"{type(exc).__name__}: {exc}".encode() or b"failed")
            return 71
        if process == 0:
            code = 70
            try:
                status_sock.close()
                code = self.job_process(job_sock, ready_fd, output)
            finally:
                os._exit(code)
        # The init holds nothing of the job: no socket, no output, no descriptor of its own
        # but the status socket (which the job's process closed); and it cannot be traced by
        # the job (the same user otherwise): what it reports is the job's true status.
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        job_sock.close()
        os.close(ready_fd)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        os.close(output)
        while True:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                return 0
            except InterruptedError:
                continue
            if pid == process:
                code = os.waitstatus_to_exitcode(status)
                status_sock.send(json.dumps({"status": code}).encode())
                if not self.isolate:
                    # No namespace ends what the job left running: its process group does
                    # (this init with it), as a cold job's group at its end.
                    os.killpg(0, signal.SIGKILL)
                return 0

    def job_process(self, job_sock, ready_fd, output):
        """The job's process: waits for its job, runs it."""
        try:
            devnull = os.open("/dev/null", os.O_RDWR)
            os.dup2(devnull, 0)
            os.close(devnull)
            # From here on, what the child prints is its job's log.
            os.dup2(output, 1)
            os.dup2(output, 2)
            os.close(output)
            program = self.config.get("exec")
            if program:
                # A runtime that cannot fork safely (Bun, Deno): its own program starts now,
                # isolated, and reads its job from descriptor 3 when it comes.
                os.dup2(job_sock.fileno(), 3)
                job_sock.close()
            keep = {3 if program else job_sock.fileno(), ready_fd}
            # Nothing of the parent's stays open: its control socket, its log, other pipes.
            for fd in _open_fds():
                if fd > 2 and fd not in keep:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        except BaseException as exc:
            os.write(ready_fd, f"{type(exc).__name__}: {exc}".encode() or b"failed")
            return 71
        if program:
            os.chdir(self.job_dir())
            os.set_inheritable(3, True)
            os.close(ready_fd)
            os.execve(program[0], program, self.config.get("env") or {})
        os.close(ready_fd)  # EOF: ready
        job = _receive_job(job_sock)
        if job is None:
            return 0  # the worker dropped this child without a job
        os.environ.clear()
        os.environ.update(job.get("env") or {})
        os.chdir(self.job_dir())

        results = []

        def write_result(text):
            results.append(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)

        code = 0
        assert self.entry is not None, "a fork server without exec has an entry"
        try:
            self.entry(job.get("payload") or {}, write_result)
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        code &= 0xFF  # as the exit status would say it
        _finish()
        # The job is over: its output closed, then its result with its exit status after a
        # NUL (JSON text never holds one), so that the worker need not wait for this
        # process's exit (nor the namespace's teardown) to know how it ended.
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                os.close(fd)
        job_sock.sendall(b"".join(results[-1:]) + b"\0" + str(code).encode())
        job_sock.shutdown(socket.SHUT_WR)
        return code

    def job_dir(self):
        """The job's working directory: a fresh tmpfs over the parent's when isolated;
        otherwise (no sandbox) a directory of its own, removed by the keeper."""
        if self.isolate:
            return self.cwd
        path = os.path.join(self.cwd, self.job_name)
        os.mkdir(path, 0o700)
        return path

    def isolate_child(self):
        if not self.isolate:
            return
        # PID 1 of its namespace: if the keeper dies, so does the child (and its job).
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        tmp_mb = self.limits.get("tmp_mb")
        size = f",size={tmp_mb * MB}" if tmp_mb else ""
        # The sandbox mounted the parent's toolchains and files at their own paths, some
        # perhaps under /tmp (a checkout there): the job's own /tmp covers them, so they
        # are bound again on top of it, through descriptors opened before.
        kept = [(point, os.open(point, os.O_PATH)) for point in _mount_points_under("/tmp")]
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777{size}")
        for point, fd in kept:
            source = f"/proc/self/fd/{fd}"
            if os.path.isdir(source):
                os.makedirs(point, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(point), exist_ok=True)
                open(point, "a").close()  # a mount point
            _mount(source, point, None, MS_BIND | MS_REC, None)
            os.close(fd)
        _mount("tmpfs", self.cwd, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755{size}")
        if not self.network:
            _loopback_up()
        # No user namespace may be created below this one: with one, a job would get
        # capabilities back (over namespaces of its own, but still more kernel surface).
        _write("/proc/sys/user/max_user_namespaces", "0")

    def apply_limits(self):
        pairs = (
            ("memory_mb", resource.RLIMIT_AS, MB),
            ("processes", resource.RLIMIT_NPROC, 1),
            ("open_files", resource.RLIMIT_NOFILE, 1),
            ("file_size_mb", resource.RLIMIT_FSIZE, MB),
        )
        for name, which, unit in pairs:
            value = self.limits.get(name)
            if value:
                value *= unit
                # A limit is only ever lowered (raising a hard limit needs the host's root).
                hard = resource.getrlimit(which)[1]
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)
                resource.setrlimit(which, (value, value))

    def drop_privileges(self):
        if not self.isolate:
            _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            return
        cap = 0
        while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
            cap += 1
        _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        _check(_libc.capset(ctypes.byref(header), data), "capset")
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _finish():
    """What an interpreter does at its exit, which ``os._exit`` skips: wait for the job's
    non-daemon threads, run its ``atexit`` functions, flush its output."""
    threading = sys.modules.get("threading")
    if threading is not None:
        with contextlib.suppress(BaseException):
            threading._shutdown()  # type: ignore[attr-defined]
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()


def _mount_points_under(prefix):
    """The outermost mount points strictly under ``prefix`` (mounted below another one, a
    point comes back with it: its bind is recursive)."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point.startswith(prefix.rstrip("/") + "/"):
                points.append(point)
    points.sort(key=len)
    outer = []
    for point in points:
        if not any(point.startswith(top + "/") or point == top for top in outer):
            outer.append(point)
    return outer


def _open_fds():
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 256))


def _loopback_up():
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _receive_job(job_sock):
    """The job's JSON; ``None`` at end of stream (the worker dropped this child)."""
    header = b""
    while len(header) < 4:
        more = job_sock.recv(4 - len(header))
        if not more:
            return None
        header += more
    (size,) = struct.unpack(">I", header)
    chunks, got = [], 0
    while got < size:
        chunk = job_sock.recv(min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return json.loads(b"".join(chunks))


def main():
    config = json.loads(sys.argv[1])
    parent = Parent(config)
    try:
        preloaded, failed = parent.load()
    except BaseException as exc:
        parent.send({"fatal": f"{type(exc).__name__}: {exc}"})
        return 1
    parent.send({"ready": True, "rss_kb": _rss_kb(), "preloaded": preloaded, "failed": failed})
    parent.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
