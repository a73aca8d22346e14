"""What of the host every sandboxed step sees: the system directories and a few files of /etc.

Detected once per worker (:meth:`SystemLayout.detect`) and rendered by each backend. Kept as
plain data so that the nsjail golden tests can pass a fixed layout and get the same config on
every machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
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
    twenty (measured: 2.3 ms of a job's start on the benchmark machine). Files are copied
    with their content (a /etc/resolv.conf link into /run becomes its text), except links
    into /usr, kept as links (/etc/localtime); links inside copied directories are kept
    (/etc/alternatives and /etc/ssl/certs point into /usr, which sandboxes see).

    Each copy is a directory of ``store`` named by a fingerprint of its sources (every
    path, type, size, modification time and link target under the entries), made whole
    under a temporary name and renamed into place; ``root`` is a symlink to the current one
    (a bind mount follows it when a sandbox starts). A start whose /etc is as the last copy
    found it reuses that copy: re-creating it cost a platform start a second or more (the
    hundreds of links of /etc/ssl/certs), and several platforms (tests) may share a store.
    The sources are looked at again every ``REFRESH_S`` seconds by the launching worker (a
    stat of each entry; the whole walk only when one changed): a changed resolv.conf or
    certificate bundle reaches the next jobs within that time. A running job keeps the copy
    it started with.
    """

    REFRESH_S = 30.0
    #: A copy no refresh has used for this long is removed (a job started on it may still
    #: run: it keeps the copy it was started with bound at its /etc).
    KEEP_S = 7 * 24 * 3600.0

    def __init__(self, files_dir: Path, source: str = "/etc", store: Path | None = None) -> None:
        self.root = files_dir
        self.source = source
        #: Where the copies are; by default next to ``root``: ``<root>-copies``.
        self.store = store if store is not None else files_dir.with_name(f"{files_dir.name}-copies")
        self._seen: dict[str, tuple[int, int, str] | None] | None = None
        self._current: Path | None = None
        self._checked = 0.0

    def refresh_if_due(self) -> None:
        now = time.monotonic()
        if now - self._checked >= self.REFRESH_S:
            self._checked = now
            # Also when the copy is gone (pruned by another process sharing the store after
            # a long idle time): the next jobs need one.
            if self._signatures() != self._seen or not _touch(self._current):
                self.refresh()

    def refresh(self) -> None:
        """Point ``root`` at a copy of the sources as they are now (made if none is)."""
        self._checked = time.monotonic()
        self._seen = self._signatures()
        for _attempt in range(3):
            key = _fingerprint(self.source)
            copy = self.store / key
            if copy.is_dir() or self._make(copy, key):
                break
        else:
            raise RuntimeError(f"{self.source} kept changing while it was copied")
        _touch(copy)
        _point(self.root, copy)
        if copy != self._current:
            self._current = copy
            self._prune(copy)

    def _signatures(self) -> dict[str, tuple[int, int, str] | None]:
        """The cheap look: each entry's own size and time (a directory's change with its
        list of names), and where it links to."""
        return {name: _signature(os.path.join(self.source, name)) for name in ETC_ENTRIES}

    def _make(self, copy: Path, key: str) -> bool:
        """Copy the sources into ``copy``; False when they changed meanwhile (the copy would
        not be what ``key`` names)."""
        self.store.mkdir(parents=True, exist_ok=True)
        self.store.chmod(0o755)
        tmp = self.store / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new"
        tmp.mkdir()
        try:
            for name in ETC_ENTRIES:
                source = os.path.join(self.source, name)
                if _signature(source) is None:
                    continue  # missing or dangling (no resolver running): not copied
                target = tmp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                _copy(source, target)
            for name, text in (("passwd", PASSWD), ("group", GROUP)):
                (tmp / name).write_text(text)
            _chmod_readable(tmp)
            if _fingerprint(self.source) != key:
                return False
            try:
                os.rename(tmp, copy)
            except OSError:
                if not copy.is_dir():  # not another process's same copy, made meanwhile
                    raise
            return True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _prune(self, current: Path) -> None:
        """Drop the copies no one used for ``KEEP_S`` (and leftovers of interrupted ones)."""
        limit = time.time() - self.KEEP_S
        with contextlib.suppress(OSError), os.scandir(self.store) as entries:
            for entry in entries:
                if entry.path == str(current):
                    continue
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < limit:
                        shutil.rmtree(entry.path, ignore_errors=True)


#: Changes whenever what a copy holds besides the sources changes (passwd, group, the way
#: entries are copied): a copy made by another version is not reused.
_COPY_FORMAT = f"1\0{PASSWD}\0{GROUP}\0{ETC_ENTRIES}"


def _fingerprint(source: str) -> str:
    """A name for a copy of ``source``'s entries: the hash of everything copied from it."""
    digest = hashlib.sha256(_COPY_FORMAT.encode())
    for name in ETC_ENTRIES:
        path = os.path.join(source, name)
        digest.update(f"\0E{name}\0".encode())
        if os.path.islink(path) and os.path.realpath(path).startswith("/usr/"):
            digest.update(f"L{os.readlink(path)}".encode())  # kept as a link (see _copy)
        elif os.path.isdir(path):
            _walk_into(digest.update, path)
        else:
            digest.update(repr(_signature(path)).encode())
    return digest.hexdigest()[:32]


def _walk_into(update: Callable[[bytes], None], path: str) -> None:
    """Hash a directory's tree as ``shutil.copytree(symlinks=True)`` copies it."""
    with os.scandir(path) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        update(f"\0{entry.name}\0".encode())
        try:
            if entry.is_symlink():
                update(f"L{os.readlink(entry.path)}".encode())
            elif entry.is_dir(follow_symlinks=False):
                update(b"D")
                _walk_into(update, entry.path)
                update(b"\0U")
            else:
                st = entry.stat(follow_symlinks=False)
                update(f"F{st.st_mtime_ns}:{st.st_size}".encode())
        except OSError:
            update(b"?")  # gone meanwhile: the copy's check sees the change


def _signature(path: str) -> tuple[int, int, str] | None:
    try:
        st = os.stat(path)  # follows links: a changed link target counts
    except OSError:
        return None  # missing or dangling (no resolver running): not copied
    link = os.readlink(path) if os.path.islink(path) else ""
    return (st.st_mtime_ns, st.st_size, link)


def _touch(path: Path | None) -> bool:
    """Mark a copy as in use (see :attr:`EtcCopy.KEEP_S`); False if there is none."""
    if path is None:
        return False
    try:
        os.utime(path)
    except OSError:
        return False
    return True


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target`` (relative: the data directory may move),
    replacing what it was in one rename; a directory there (the copy of older versions,
    made in place) is moved aside and removed."""
    relative = os.path.relpath(target, link.parent)
    with contextlib.suppress(OSError):
        if os.readlink(link) == relative:
            return
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.link")
    os.symlink(relative, tmp)
    if link.is_dir() and not link.is_symlink():
        old = link.with_name(f".{link.name}.{os.getpid()}.old")
        os.rename(link, old)
        os.replace(tmp, link)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, link)


def _copy(source: str, target: Path) -> None:
    """Copy ``source`` to ``target`` (a new path)."""
    if os.path.islink(source) and os.path.realpath(source).startswith("/usr/"):
        # A link into /usr (which sandboxes see) stays a link: /etc/localtime's target is how
        # ICU (Deno, Node) names the time zone; as a plain file it scans every zone file.
        os.symlink(os.readlink(source), target)
    elif os.path.isdir(source):
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copyfile(source, target)


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
