"""Recipe and mount validation: what the core refuses to run, and the message it gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from gristmill import Limits, Mount, Recipe, RecipeError, toolchain_mounts
from gristmill.sandbox.policy import RunPolicy


def recipe(**changes: object) -> Recipe:
    fields: dict[str, object] = {
        "argv": ["/usr/bin/bash", "main.sh"],
        "env": {"PATH": "/usr/bin"},
        "cwd": Path("/var/lib/gristmill/jobs/1"),
    }
    fields.update(changes)
    return Recipe(**fields)  # type: ignore[arg-type]


def test_the_recipes_of_existing_runtimes_stay_valid() -> None:
    """Every new field has a default: a recipe of three fields is still complete."""
    r = Recipe(["/usr/bin/true"], {}, Path("/srv/job"))
    r.validate()
    assert r.mounts == () and r.limits == Limits() and r.network is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"argv": []}, "argv must be a non-empty list"),
        ({"argv": "bash main.sh"}, "argv must be a non-empty list"),
        ({"argv": ["", "x"]}, "argv[0] (the program) is empty"),
        ({"argv": ["/bin/sh", 3]}, "argv[1] must be a string"),
        ({"argv": ["/bin/sh", "a\x00b"]}, "argv[1] must be a string without NUL"),
        ({"cwd": Path("relative/dir")}, "cwd must be an absolute path"),
        ({"cwd": Path("/usr/local")}, "system directory /usr"),
        ({"cwd": Path("/")}, "cannot target /"),
        ({"env": {"A=B": "x"}}, "invalid variable name"),
        ({"env": {"A": 1}}, "env['A'] must be a string"),
        ({"phase": ""}, "phase must name the step"),
        ({"limits": Limits(memory_mb=0)}, "limits.memory_mb must be a positive whole number"),
        ({"limits": Limits(processes=-1)}, "limits.processes must be a positive"),
        ({"limits": Limits(open_files=True)}, "limits.open_files"),  # type: ignore[arg-type]
        ({"limits": {"memory_mb": 4}}, "limits must be a gristmill.Limits"),
        ({"network": "yes"}, "network must be True, False or None"),
        ({"mounts": ["/opt/tool"]}, "mounts must hold gristmill.Mount objects"),
        ({"mounts": [Mount("/usr", writable=True)]}, "/usr cannot be mounted writable"),
        ({"mounts": [Mount("/etc/ssl", writable=True)]}, "cannot target /etc/ssl"),
        ({"mounts": [Mount("/etc/pip.conf")]}, "the sandbox's /etc is its own copy"),
        ({"mounts": [Mount("/srv/pip.conf", target="/etc/pip.conf")]}, "/etc is its own copy"),
        ({"mounts": [Mount("/", writable=True)]}, "cannot target /"),
        ({"mounts": [Mount("/srv/x", target="/proc/self")]}, "cannot target /proc/self"),
        ({"mounts": [Mount("/srv/x", target="/dev")]}, "/dev belongs to the sandbox"),
        ({"mounts": [Mount("/srv/x", target="/tmp")]}, "/tmp belongs to the sandbox"),
    ],
)
def test_invalid_recipes_are_refused_with_the_field_named(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(RecipeError) as info:
        recipe(**changes).validate()
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("relative/path", "must be an absolute path"),
        ("/opt/../etc", "must not contain '..'"),
        ("/opt/a\x00b", "NUL"),
    ],
)
def test_mount_paths_are_checked_when_made(source: str, message: str) -> None:
    with pytest.raises(RecipeError) as info:
        Mount(source)
    assert message in str(info.value)


def test_mounts_inside_tmp_and_read_only_system_subdirectories_are_fine() -> None:
    recipe(
        mounts=[
            Mount("/tmp/cache", writable=True),
            Mount("/usr/local/go"),  # read-only inside a system directory: harmless
            Mount("/opt/toolchain", target="/toolchain"),
        ]
    ).validate()
    assert Mount("/opt//tool/").source == "/opt/tool"
    assert Mount("/opt/tool").destination == "/opt/tool"


def test_network_policy_per_phase() -> None:
    on, off = RunPolicy(network=True), RunPolicy(network=False)
    assert on.network_for(recipe()) and not off.network_for(recipe())
    assert not on.network_for(recipe(network=False))
    # A run step cannot override the worker's "off"; a lock or install step fetching
    # packages can, by asking.
    assert not off.network_for(recipe(network=True))
    assert off.network_for(recipe(network=True, phase="lock"))
    assert off.network_for(recipe(network=True, phase="install"))
    assert not off.network_for(recipe(phase="install"))


def test_the_worker_caps_memory_limits_but_does_not_add_one() -> None:
    policy = RunPolicy(max_memory_mb=64)
    assert policy.limits_for(recipe(limits=Limits(memory_mb=4096))).memory_mb == 64
    assert policy.limits_for(recipe(limits=Limits(memory_mb=32))).memory_mb == 32
    # Go, Bun, Deno cannot run under an address-space limit: no limit stays none.
    assert policy.limits_for(recipe()).memory_mb is None


def test_toolchain_mounts(tmp_path: Path) -> None:
    real = tmp_path / "pkg" / "bin"
    real.mkdir(parents=True)
    (real / "tool").write_text("")
    links = tmp_path / "node_modules" / ".bin"
    links.mkdir(parents=True)
    (links / "tool").symlink_to(real / "tool")
    assert toolchain_mounts("/usr/bin/bash", "/bin/sh", None) == []
    mounts = toolchain_mounts(links / "tool", prefixes=[str(tmp_path / "pkg")])
    assert [m.source for m in mounts] == [str(tmp_path / "pkg"), str(links)]
    assert not any(m.writable for m in mounts)
