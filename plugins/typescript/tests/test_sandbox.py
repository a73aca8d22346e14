"""Bun and Deno jobs under bubblewrap, as a worker runs them: what each step declares, the
cowsay example locked, installed and run in the sandbox, and what a job cannot touch there.

The conformance kit runs the hello world of each runtime in the sandbox
(``test_contract_hello_world_runs_in_the_sandbox``); these tests add packages. Each uses a
fresh ``sandbox_root`` (job directories and caches the sandbox's user can reach), so the
lock and install steps run in the sandbox from an empty cache.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gristmill import Recipe
from gristmill.sandbox import RunPolicy
from gristmill.testing.contract import require_toolchain
from gristmill.testing.runner import RanJob, make_context, run_job
from gristmill_typescript.bun import BunRuntime
from gristmill_typescript.deno import DenoRuntime
from gristmill_typescript.dependencies import join_bun_lock

COWSAY = (
    'import * as cowsay from "{specifier}";\n'
    "export function main(text: string) {{\n"
    "  return cowsay.say({{ text }});\n"
    "}}\n"
)


def ok(ran: RanJob) -> Any:
    assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
    return ran.result


def snapshot(root: Path) -> list[tuple[str, int, int]]:
    """Every file under ``root`` with its size and modification time."""
    return sorted(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    )


# ------------------------------------------------------------------------------ recipes


def _only(recipe: Recipe | Sequence[Recipe]) -> Recipe:
    assert isinstance(recipe, Recipe)
    return recipe


@pytest.mark.parametrize("name", ["bun", "deno"])
def test_each_step_declares_what_it_needs(name: str, tmp_path: Path) -> None:
    """Run steps mount everything read-only and keep the worker's network policy; the lock
    and install steps write their cache and ask for the network. No step has a memory
    limit (see gristmill_typescript.runtime.LIMITS)."""
    runtime = BunRuntime() if name == "bun" else DenoRuntime()
    require_toolchain(runtime)
    code = COWSAY.format(specifier="cowsay@1.5.0" if name == "bun" else "npm:cowsay@1.5.0")
    ctx = make_context(runtime, code, {"text": "moo"}, tmp_path)
    assert ctx.cache_dir is not None
    deps_dir = tmp_path / "envs" / name / "digest"
    deps_dir.mkdir(parents=True)
    (deps_dir / "node_modules").mkdir()
    run = _only(runtime.prepare(replace(ctx, deps_dir=deps_dir)))
    run.validate()
    assert run.network is None and run.limits.memory_mb is None
    assert not any(m.writable for m in run.mounts)
    # The binary's directory (and its link target's), the wrapper's, the environment.
    toolchain = runtime.toolchain_mounts()
    assert run.mounts[: len(toolchain)] == toolchain
    sources = {m.source for m in run.mounts}
    assert str(Path(runtime.wrapper).parent) in sources and str(deps_dir) in sources

    inputs = runtime.lock_inputs(code)
    assert inputs is not None
    lock_dir = ctx.job_dir / "lock"
    lock_dir.mkdir()
    lock = _only(runtime.prepare_lock(replace(ctx, job_dir=lock_dir), inputs))
    target = tmp_path / "target"
    target.mkdir()
    stored = (
        join_bun_lock(inputs, '{ "lockfileVersion": 1 }\n')
        if name == "bun"
        else json.dumps({"version": "5", "specifiers": {"npm:cowsay@1.5.0": "1.5.0"}})
    )
    install = _only(runtime.prepare_install(ctx, stored, target))
    cache = "install" if name == "bun" else "deno"
    for step in (lock, install):
        step.validate()
        assert step.network is True and step.limits.memory_mb is None
        assert [m.source for m in step.mounts if m.writable] == [str(ctx.cache_dir / cache)]
    assert install.cwd == target  # the step's working directory: writable


@pytest.mark.parametrize("name", ["bun", "deno"])
def test_certificates_the_worker_names_are_mounted(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock and install steps get the worker's certificate settings: the files they name
    must be visible too (the system directories and the sandbox's /etc already are)."""
    ca = tmp_path / "company-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    certs = tmp_path / "certs"
    certs.mkdir()
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(ca))
    monkeypatch.setenv("SSL_CERT_DIR", f"/etc/ssl/certs:{certs}")
    monkeypatch.setenv("SSL_CERT_FILE", "/usr/lib/ssl/cert.pem")
    runtime = BunRuntime() if name == "bun" else DenoRuntime()
    require_toolchain(runtime)
    code = COWSAY.format(specifier="cowsay@1.5.0" if name == "bun" else "npm:cowsay@1.5.0")
    ctx = make_context(runtime, code, {}, tmp_path)
    inputs = runtime.lock_inputs(code)
    assert inputs is not None
    lock = _only(runtime.prepare_lock(ctx, inputs))
    assert lock.env["NODE_EXTRA_CA_CERTS"] == str(ca)
    mounted = [m for m in lock.mounts if m.optional]
    assert sorted(m.source for m in mounted) == sorted([str(ca), str(certs)])
    assert not any(m.writable for m in mounted)


# ------------------------------------------------------------------------------ Bun


@pytest.mark.usefixtures("registry")
def test_bun_cowsay_locks_installs_and_runs_in_the_sandbox(
    bun: BunRuntime, sandbox_policy: RunPolicy, sandbox_root: Path
) -> None:
    code = COWSAY.format(specifier="cowsay@1.5.0")
    cache = sandbox_root / "cache" / "bun"
    first = run_job(
        bun, code, {"text": "moo"}, sandbox_root, cache_dir=cache, policy=sandbox_policy
    )
    assert "< moo >" in ok(first)
    assert "installing the dependencies" in first.logs
    deps_dir = (first.job_dir / "node_modules").resolve().parent
    assert deps_dir.parent == sandbox_root / "cache" / "envs" / "bun"
    installed = deps_dir / "node_modules" / "cowsay" / "package.json"
    assert json.loads(installed.read_text())["version"] == "1.5.0"
    # The install cache and the environment are two mounts of the install step: Bun cannot
    # hard-link across them (EXDEV) and copies. The environment shares no file with the
    # cache, so later install steps, which write the cache, cannot change it.
    assert installed.stat().st_nlink == 1

    before = snapshot(deps_dir)
    again = run_job(
        bun, code, {"text": "again"}, sandbox_root, cache_dir=cache, policy=sandbox_policy
    )
    assert "< again >" in ok(again) and "installing" not in again.logs
    assert snapshot(deps_dir) == before


@pytest.mark.usefixtures("registry")
def test_a_bun_job_cannot_write_into_its_dependencies(
    bun: BunRuntime, sandbox_policy: RunPolicy, sandbox_root: Path
) -> None:
    """The environment is read-only (a job could otherwise change what the next jobs of the
    lock run) and the install cache is not there at all."""
    code = (
        'import * as cowsay from "cowsay@1.5.0";\n'
        'import { writeFileSync } from "node:fs";\n'
        "export function main(paths: string[]) {\n"
        "  return paths.map((path) => {\n"
        "    try {\n"
        '      writeFileSync(path, "module.exports = { say: () => \\"poisoned\\" };");\n'
        '      return "written";\n'
        "    } catch (e) {\n"
        "      return (e as any).code;\n"
        "    }\n"
        "  });\n"
        "}\n"
    )
    cache = sandbox_root / "cache" / "bun"
    package = "node_modules/cowsay/index.js"
    # The environment's path is known once the job installed it: ask it first.
    ran = run_job(
        bun, code, {"paths": [package]}, sandbox_root, cache_dir=cache, policy=sandbox_policy
    )
    assert ok(ran) == ["EROFS"]
    deps_dir = (ran.job_dir / "node_modules").resolve().parent
    targets = [
        package,  # through the job's node_modules link
        str(deps_dir / package),  # the environment itself
        str(deps_dir / "node_modules" / "new-file.js"),
        str(cache / "install" / "poison.js"),  # Bun's install cache: not mounted
    ]
    ran = run_job(
        bun, code, {"paths": targets}, sandbox_root, cache_dir=cache, policy=sandbox_policy
    )
    assert ok(ran) == ["EROFS", "EROFS", "EROFS", "ENOENT"]
    cowsay = COWSAY.format(specifier="cowsay@1.5.0")
    ran = run_job(
        bun, cowsay, {"text": "intact"}, sandbox_root, cache_dir=cache, policy=sandbox_policy
    )
    assert "< intact >" in ok(ran)


def test_a_bun_job_never_installs_packages(
    bun: BunRuntime, sandbox_policy: RunPolicy, sandbox_root: Path
) -> None:
    """A package no lock can know (imported by a computed name) is not auto-installed: the
    job fails naming it, in the sandbox as outside, and nothing reaches the caches."""
    code = (
        "export async function main() {\n"
        '  const pad = await import(["left", "pad"].join("-"));\n'
        '  return pad.default("1", 3);\n'
        "}\n"
    )
    cache = sandbox_root / "cache" / "bun"
    for policy in (sandbox_policy, None):
        ran = run_job(bun, code, {}, sandbox_root, cache_dir=cache, policy=policy)
        assert not ran.outcome.success
        assert "Cannot find package 'left-pad'" in ran.outcome.result_json
    assert not any(p.is_file() for p in cache.rglob("*"))


# ------------------------------------------------------------------------------ Deno


@pytest.mark.usefixtures("registry")
def test_deno_cowsay_locks_installs_and_runs_in_the_sandbox(
    deno: DenoRuntime, sandbox_policy: RunPolicy, sandbox_root: Path
) -> None:
    code = COWSAY.format(specifier="npm:cowsay@1.5.0")
    cache = sandbox_root / "cache" / "deno"
    first = run_job(
        deno, code, {"text": "moo"}, sandbox_root, cache_dir=cache, policy=sandbox_policy
    )
    assert "< moo >" in ok(first)
    assert "installing the dependencies" in first.logs
    deno_dir = cache / "deno"
    assert (deno_dir / "npm" / "registry.npmjs.org" / "cowsay" / "1.5.0").is_dir()

    # The run step only reads DENO_DIR: the next job changes nothing there.
    before = snapshot(deno_dir)
    again = run_job(
        deno, code, {"text": "again"}, sandbox_root, cache_dir=cache, policy=sandbox_policy
    )
    assert "< again >" in ok(again) and "installing" not in again.logs
    assert snapshot(deno_dir) == before

    # A package the cache lacks cannot be added by a job: it fails, naming it.
    computed = (
        "export async function main() {\n"
        '  const pad = await import(["npm:left", "pad@1.3.0"].join("-"));\n'
        '  return pad.default("1", 3);\n'
        "}\n"
    )
    ran = run_job(deno, computed, {}, sandbox_root, cache_dir=cache, policy=sandbox_policy)
    assert not ran.outcome.success
    assert "left-pad" in ran.outcome.result_json
    assert "Read-only file system" in ran.outcome.result_json
    assert snapshot(deno_dir) == before
