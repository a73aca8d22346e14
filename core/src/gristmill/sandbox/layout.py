"""What of the host every sandboxed step sees: the system directories and a few files of /etc.

Detected once per worker (:meth:`SystemLayout.detect`) and rendered by each backend. Kept as
plain data so that the nsjail golden tests can pass a fixed layout and get the same config on
every machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gristmill.sandbox.spec import SYSTEM_DIRS

__all__ = [
    "ETC_ENTRIES",
    "SANDBOX_GID",
    "SANDBOX_OUTSIDE_GID",
    "SANDBOX_OUTSIDE_UID",
    "SANDBOX_UID",
    "EtcCopy",
    "HostEntry",
    "SystemLayout",
]

#: The user and group a job is inside its sandbox ("nobody"), whoever it is outside.
SANDBOX_UID = 65534
SANDBOX_GID = 65534
#: Who a root worker's sandboxes are outside, by default: not 65534 (``nobody``), which the
#: embedded Postgres runs as when Gristmill runs as root: a job must share nothing with it.
SANDBOX_OUTSIDE_UID = 65533
SANDBOX_OUTSIDE_GID = 65533

#: The parts of /etc a program may need, and nothing that holds a secret (no shadow, no
#: ssh host keys, no ssl/private, no credentials a package manager keeps there): name
#: resolution, certificates, the dynamic linker's cache, time zone, MIME types, and the
#: alternatives symlinks that some /usr/bin entries point to. /etc/passwd and /etc/group are
#: not the host's: the sandbox gets its own two-line files (root and nobody), so the host's
#: user names do not leak. Only these (copied, see :class:`EtcCopy`) make the sandbox's /etc.
ETC_ENTRIES: tuple[str, ...] = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "gai.conf",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "pki/ca-trust",
    "pki/tls/certs",
    "protocols",
    "resolv.conf",
    "services",
    "ssl/certs",
    "ssl/openssl.cnf",
    "timezone",
)

PASSWD = (
    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    f"nobody:x:{SANDBOX_UID}:{SANDBOX_GID}:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = f"root:x:0:\nnogroup:x:{SANDBOX_GID}:\n"


@dataclass(frozen=True)
class HostEntry:
    """One read-only entry: a bind of ``source`` at ``target``, or a symlink ``target`` ->
    ``source`` (merged-/usr systems make /bin a link to usr/bin)."""

    kind: Literal["bind", "symlink"]
    source: str
    target: str


@dataclass(frozen=True)
class SystemLayout:
    entries: tuple[HostEntry, ...]
    #: The sandbox's /etc, kept up to date by :meth:`refresh` (``None`` in a fixed layout).
    etc: EtcCopy | None = None

    @classmethod
    def detect(cls, files_dir: Path) -> SystemLayout:
        """The system directories of this host and a copy of the allowed parts of /etc in
        ``files_dir`` (which must be reachable by the sandbox's user)."""
        entries: list[HostEntry] = []
        for path in SYSTEM_DIRS:
            if path == "/etc":
                continue
            if os.path.islink(path):
                entries.append(HostEntry("symlink", os.readlink(path), path))
            elif os.path.isdir(path):
                entries.append(HostEntry("bind", path, path))
        etc = EtcCopy(files_dir)
        etc.refresh()
        entries.append(HostEntry("bind", str(etc.root), "/etc"))
        return cls(tuple(entries), etc)

    def refresh(self) -> None:
        if self.etc is not None:
            self.etc.refresh_if_due()

    def visible_roots(self) -> list[str]:
        """Host paths visible inside at the same place (for "is argv[0] visible?")."""
        return [e.target for e in self.entries if e.kind == "bind" and e.source == e.target] + [
            e.target for e in self.entries if e.kind == "symlink"
        ]


class EtcCopy:
    """The sandbox's /etc: a copy of :data:`ETC_ENTRIES` and its own passwd and group.

    One directory bound at /etc costs a sandbox one mount where binding each entry cost
    twenty (measured: 2.3 ms of a job's start on the benchmark machine). The copy is made at
    start and brought up to date when a source changes (looked at every ``REFRESH_S``
    seconds, by the launching worker): a changed resolv.conf or certificate bundle reaches
    jobs within that time. Files are copied with their content (a /etc/resolv.conf link into
    /run becomes its text), except links into /usr, kept as links (/etc/localtime); links
    inside copied directories are kept (/etc/alternatives and /etc/ssl/certs point into /usr,
    which sandboxes see).
    """

    REFRESH_S = 30.0

    def __init__(self, files_dir: Path, source: str = "/etc") -> None:
        self.root = files_dir
        self.source = source
        self._seen: dict[str, tuple[int, int] | None] = {}
        self._checked = 0.0

    def refresh_if_due(self) -> None:
        now = time.monotonic()
        if now - self._checked >= self.REFRESH_S:
            self.refresh()

    def refresh(self) -> None:
        self._checked = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for name in ETC_ENTRIES:
            source = os.path.join(self.source, name)
            signature = _signature(source)
            if self._seen.get(name, ()) == signature:
                continue
            self._seen[name] = signature
            target = self.root / name
            if signature is None:
                _remove(target)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy(source, target)
        for name, text in (("passwd", PASSWD), ("group", GROUP)):
            target = self.root / name
            if not target.is_file() or target.read_text() != text:
                _write(target, text)


def _signature(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # follows links: a changed link target counts
    except OSError:
        return None  # missing or dangling (no resolver running): not copied
    return (st.st_mtime_ns, st.st_size)


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


def _copy(source: str, target: Path) -> None:
    """Replace ``target`` with a copy of ``source`` (whole, then renamed into place)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.new")
    _remove(tmp)
    if os.path.islink(source) and os.path.realpath(source).startswith("/usr/"):
        # A link into /usr (which sandboxes see) stays a link: /etc/localtime's target is how
        # ICU (Deno, Node) names the time zone; as a plain file it scans every zone file.
        os.symlink(os.readlink(source), tmp)
    elif os.path.isdir(source):
        shutil.copytree(source, tmp, symlinks=True)
    else:
        shutil.copyfile(source, tmp)
    if not tmp.is_symlink():
        _chmod_readable(tmp)
    if target.is_dir() and not target.is_symlink():
        # A directory cannot be renamed over another: swap, then drop the old one.
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def _chmod_readable(path: Path) -> None:
    if path.is_dir():
        for root, _dirs, files in os.walk(path):
            os.chmod(root, 0o755)
            for name in files:
                full = os.path.join(root, name)
                if not os.path.islink(full):
                    os.chmod(full, 0o644)
    else:
        path.chmod(0o644)


def _write(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.new")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, target)
