"""Dependencies of Bun and Deno scripts: what the imports ask for, the lock, the install, and
jobs running against exactly that lock.

The resolver tests use the real Bun and Deno and the real npm registry, through the core's own
code path (:func:`gristmill.testing.runner.run_job` and ``lock_script``, which lock, install
into ``<cache>/envs`` and run as a worker does).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from gristmill.runtimes import DependencyLocking, Recipe, ScriptError
from gristmill.testing.contract import require_toolchain
from gristmill.testing.runner import RanJob, lock_script, make_context, run_job
from gristmill_typescript.bun import BunRuntime
from gristmill_typescript.deno import DenoRuntime
from gristmill_typescript.dependencies import (
    deno_entrypoint_from_lock,
    join_bun_lock,
    package_json,
    package_of,
    pinned_removed,
    split_bun_lock,
)

COWSAY = (
    'import * as cowsay from "{specifier}";\n'
    "export function main(text: string) {{\n"
    "  return cowsay.say({{ text }});\n"
    "}}\n"
)


def dependencies(source: str) -> dict[str, str] | None:
    text = package_json(source)
    return None if text is None else json.loads(text)["dependencies"]


# ------------------------------------------------------------------------------ lock inputs


def test_both_runtimes_lock_dependencies() -> None:
    assert isinstance(BunRuntime(), DependencyLocking)
    assert isinstance(DenoRuntime(), DependencyLocking)


@pytest.mark.parametrize(
    "source",
    [
        "export function main() {}\n",
        'import { helper } from "./helper.ts";\nimport x from "../x";\nimport y from "/f/y";\n',
        'import fs from "fs";\nimport { join } from "node:path";\nimport p from "fs/promises";\n',
        'import { Database } from "bun:sqlite";\nimport { $ } from "bun";\n',
        'import x from "https://esm.sh/lodash";\nimport y from "jsr:@std/path";\n',
        'const name = "lodash";\nconst m = await import(name);\n',  # not knowable before a run
        'import type { Foo } from "some-types";\nexport type { Bar } from "more-types";\n',
        'const s = "import x from \\"lodash\\"";\n',  # a string, not an import
    ],
)
def test_scripts_without_package_imports_need_no_lock(source: str) -> None:
    assert BunRuntime().lock_inputs(source) is None


def test_each_import_form_is_read() -> None:
    source = (
        'import * as a from "static-import";\n'
        'import "side-effect";\n'
        'export * from "re-export-all";\n'
        'export { x } from "re-export-named";\n'
        'const d = await import("dynamic");\n'
        'import r = require("import-require");\n'
        'import wmill from "windmill-client";\n'
    )
    assert dependencies(source) == {
        name: "latest"
        for name in (
            "static-import",
            "side-effect",
            "re-export-all",
            "re-export-named",
            "dynamic",
            "import-require",
            "windmill-client",
        )
    }


@pytest.mark.parametrize(
    ("specifier", "name", "version"),
    [
        ("cowsay@1.5.0", "cowsay", "1.5.0"),
        ("npm:cowsay@1.5.0", "cowsay", "1.5.0"),
        ("@scope/pkg@^2", "@scope/pkg", "^2"),
        ("npm:@scope/pkg@^2/sub/path", "@scope/pkg", "^2"),
        ("lodash", "lodash", "latest"),
        ("lodash/fp", "lodash", "latest"),
        ("npm:lodash", "lodash", "latest"),
        ("@scope/pkg", "@scope/pkg", "latest"),
        ("pkg@>=1.2 <2", "pkg", ">=1.2 <2"),
        ("punycode/", "punycode", "latest"),  # the npm package, not the built-in
    ],
)
def test_specifiers_become_dependencies(specifier: str, name: str, version: str) -> None:
    assert dependencies(f'import x from "{specifier}";\n') == {name: version}


@pytest.mark.parametrize(
    "specifier",
    ["./a", "../a", "/a", "#internal", "node:fs", "fs", "path/posix", "bun", "bun:test",
     "https://x.y/z.ts", "data:text/javascript,1", "jsr:@std/path", "@scope"],
)  # fmt: skip
def test_specifiers_that_are_not_packages(specifier: str) -> None:
    assert package_of(specifier) is None


def test_package_json_is_deterministic() -> None:
    one = 'import b from "zeta@1";\nimport a from "alpha";\nimport c from "@m/mid@2";\n'
    two = 'import c from "@m/mid@2";\nimport a from "alpha";\nimport b from "zeta@1";\n'
    expected = (
        "{\n"
        '  "dependencies": {\n'
        '    "@m/mid": "2",\n'
        '    "alpha": "latest",\n'
        '    "zeta": "1"\n'
        "  }\n"
        "}\n"
    )
    assert package_json(one) == package_json(two) == expected


def test_a_versioned_import_wins_over_a_bare_one() -> None:
    source = 'import fp from "lodash/fp";\nimport _ from "npm:lodash@4.17.21";\n'
    assert dependencies(source) == {"lodash": "4.17.21"}
    again = 'import _ from "lodash@4.17.21";\nimport fp from "npm:lodash@4.17.21/fp";\n'
    assert dependencies(again) == {"lodash": "4.17.21"}


def test_two_versions_of_one_package_are_refused() -> None:
    source = (
        'import * as a from "cowsay@1.5.0";\n'
        "export function main() {}\n"
        'const b = await import("npm:cowsay@1.4.0");\n'
    )
    with pytest.raises(ScriptError) as info:
        BunRuntime().lock_inputs(source)
    assert info.value.line == 3
    assert "1.5.0 (line 1)" in info.value.message and "1.4.0 (line 3)" in info.value.message
    assert "cowsay" in info.value.message


def test_an_empty_version_is_refused() -> None:
    with pytest.raises(ScriptError, match="empty version") as info:
        BunRuntime().lock_inputs('\nimport x from "cowsay@";\n')
    assert info.value.line == 2


def test_job_copy_imports_resolve_in_node_modules() -> None:
    source = (
        'import * as cowsay from "cowsay@1.5.0";\n'
        "import fp from 'npm:lodash@4/fp';\n"
        'import s from "@scope/pkg@^2/sub";\n'
        'import { join } from "node:path";\n'
        'import h from "./helper.ts";\n'
        'const later = await import("npm:left-pad@1.3.0");\n'
        'const text = "cowsay@1.5.0";\n'
    )
    assert pinned_removed(source) == (
        'import * as cowsay from "cowsay";\n'
        "import fp from 'lodash/fp';\n"
        'import s from "@scope/pkg/sub";\n'
        'import { join } from "node:path";\n'
        'import h from "./helper.ts";\n'
        'const later = await import("left-pad");\n'
        'const text = "cowsay@1.5.0";\n'
    )


def test_bun_lock_text_round_trips() -> None:
    stored = join_bun_lock('{"dependencies": {}}\n', "{ lock }\n")
    assert stored == '{"dependencies": {}}\n\n//bun.lock\n{ lock }\n'
    parts = split_bun_lock(stored)
    assert (parts.package_json, parts.lock, parts.lock_file) == (
        '{"dependencies": {}}\n',
        "{ lock }\n",
        "bun.lock",
    )
    binary = split_bun_lock(join_bun_lock("{}", b"\x00bun-lockfile"))
    assert (binary.lock, binary.lock_file) == (b"\x00bun-lockfile", "bun.lockb")


def test_a_lock_that_is_not_bun_s_is_an_install_error(tmp_path: Path) -> None:
    runtime = BunRuntime()
    ctx = make_context(runtime, "export function main() {}\n", {}, tmp_path)
    with pytest.raises(ScriptError, match="not a Bun lock"):
        runtime.prepare_install(ctx, "requests==2.0\n", tmp_path)


def test_deno_inputs_and_entrypoint() -> None:
    runtime = DenoRuntime()
    source = (
        'import * as cowsay from "npm:cowsay@1.5.0";\n'
        'import { join } from "jsr:@std/path@1";\n'
        'import { red } from "https://deno.land/std@0.224.0/fmt/colors.ts";\n'
        'import fs from "node:fs";\n'
        'import h from "./helper.ts";\n'
        'import bare from "lodash";\n'  # Deno cannot resolve it without a config: not locked
        'import type { T } from "npm:types-only";\n'
        'const again = await import("npm:cowsay@1.5.0");\n'
    )
    inputs = runtime.lock_inputs(source)
    assert inputs is not None
    assert [line for line in inputs.splitlines() if not line.startswith("//")] == [
        'import "https://deno.land/std@0.224.0/fmt/colors.ts";',
        'import "jsr:@std/path@1";',
        'import "npm:cowsay@1.5.0";',
    ]
    assert runtime.lock_inputs('import fs from "node:fs";\nimport x from "lodash";\n') is None
    lock = {
        "version": "5",
        "specifiers": {"npm:cowsay@1.5.0": "1.5.0", "jsr:@std/path@1": "1.0.8"},
        "jsr": {"@std/path@1.0.8": {"integrity": "x"}},
        "npm": {"cowsay@1.5.0": {"integrity": "y"}},
        "remote": {"https://x.test/mod.ts": "z", "https://x.test/data.json": "w"},
    }
    entry = deno_entrypoint_from_lock(json.dumps(lock))
    assert [line for line in entry.splitlines() if not line.startswith("//")] == [
        'import "https://x.test/mod.ts";',
        'import "jsr:@std/path@1";',
        'import "npm:cowsay@1.5.0";',
    ]
    with pytest.raises(ValueError, match=r"not a deno\.lock"):
        deno_entrypoint_from_lock("cowsay==1\n")


# ------------------------------------------------------------------------------ recipes


def test_lock_and_install_recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver's environment is complete: the worker's registry, proxy and certificate
    settings are passed on by name, nothing else of the worker's environment."""
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "https://npm.example.test/")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", "/etc/company-ca.pem")
    monkeypatch.setenv("GRISTMILL_WORKER_SECRET", "do-not-leak")
    runtime = BunRuntime()
    require_toolchain(runtime)
    ctx = make_context(runtime, COWSAY.format(specifier="cowsay@1.5.0"), {}, tmp_path)
    inputs = runtime.lock_inputs(ctx.code)
    assert inputs is not None
    lock_dir = ctx.job_dir / "lock"
    lock_dir.mkdir()
    recipe = runtime.prepare_lock(replace(ctx, job_dir=lock_dir), inputs)
    assert isinstance(recipe, Recipe)
    assert (recipe.phase, recipe.failure_name, recipe.cwd) == ("lock", "LockError", lock_dir)
    assert (lock_dir / "package.json").read_text(encoding="utf-8") == inputs
    assert recipe.argv[:2] == [runtime.bun, "install"] and "--lockfile-only" in recipe.argv
    assert recipe.env["NPM_CONFIG_REGISTRY"] == "https://npm.example.test/"
    assert recipe.env["HTTPS_PROXY"] == "http://proxy.example.test:3128"
    assert recipe.env["NODE_EXTRA_CA_CERTS"] == "/etc/company-ca.pem"
    assert "GRISTMILL_WORKER_SECRET" not in recipe.env
    assert recipe.env["WM_JOB_ID"] == ctx.env["WM_JOB_ID"]
    assert recipe.env["BUN_INSTALL_CACHE_DIR"].startswith(str(ctx.cache_dir))

    target = tmp_path / "target"
    target.mkdir()
    lock = join_bun_lock(inputs, '{ "lockfileVersion": 1 }\n')
    install = runtime.prepare_install(ctx, lock, target)
    assert isinstance(install, Recipe)
    assert (install.phase, install.failure_name, install.cwd) == (
        "install",
        "InstallError",
        target,
    )
    assert "--frozen-lockfile" in install.argv
    assert (target / "package.json").read_text(encoding="utf-8") == inputs
    assert (target / "bun.lock").read_text(encoding="utf-8") == '{ "lockfileVersion": 1 }\n'
    assert install.env["NPM_CONFIG_REGISTRY"] == "https://npm.example.test/"


def test_a_job_without_dependencies_runs_as_before(tmp_path: Path) -> None:
    runtime = BunRuntime()
    ctx = make_context(runtime, "export function main() {\n  return 1;\n}\n", {}, tmp_path)
    recipe = runtime.prepare(ctx)
    assert isinstance(recipe, Recipe)
    # Auto-install is off for every job, with a lock or without.
    assert recipe.argv[:2] == [runtime.bun, "--no-install"]
    assert recipe.argv[2].endswith("wrapper.mjs")
    assert not (ctx.job_dir / "node_modules").exists()


# ------------------------------------------------------------------------------ real resolver


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One cache for the module, as on a worker: packages are downloaded once.
    return tmp_path_factory.mktemp("cache")


def ok(ran: RanJob) -> object:
    assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
    return ran.result


def lock_error(runtime: BunRuntime | DenoRuntime, code: str, tmp_path: Path, cache: Path) -> str:
    locked, logs = lock_script(runtime, code, tmp_path, cache_dir=cache / runtime.name)
    assert locked.lock is None and locked.error is not None, locked
    assert locked.error.outcome is not None
    error = json.loads(locked.error.outcome.result_json)["error"]
    assert error["name"] == "LockError", error
    return error["message"] + "\n" + logs


@pytest.mark.usefixtures("registry")
def test_bun_locks_installs_and_runs_cowsay(bun: BunRuntime, tmp_path: Path) -> None:
    """The example of Windmill's docs, from an empty cache: the lock pins cowsay 1.5.0 and
    its dependencies, the install fills a shared environment, jobs link to it."""
    code = COWSAY.format(specifier="cowsay@1.5.0")
    cache = tmp_path / "cache"
    locked, logs = lock_script(bun, code, tmp_path, cache_dir=cache / "bun")
    assert locked.lock, logs
    parts = split_bun_lock(locked.lock)
    assert json.loads(parts.package_json) == {"dependencies": {"cowsay": "1.5.0"}}
    assert isinstance(parts.lock, str) and '"cowsay": ["cowsay@1.5.0"' in parts.lock

    first = run_job(bun, code, {"text": "moo"}, tmp_path, cache_dir=cache / "bun", lock=locked.lock)
    assert "< moo >" in str(ok(first))
    link = first.job_dir / "node_modules"
    assert link.is_symlink()
    deps_dir = link.resolve().parent
    assert deps_dir.parent == cache / "envs" / "bun"
    installed = json.loads((deps_dir / "node_modules/cowsay/package.json").read_text())
    assert installed["version"] == "1.5.0"
    assert (deps_dir / "bun.lock").read_text(encoding="utf-8") == parts.lock

    # The next job installs nothing and writes nothing into the shared environment.
    before = sorted((p, p.stat().st_mtime_ns) for p in deps_dir.rglob("*") if not p.is_symlink())
    again = run_job(
        bun, code, {"text": "again"}, tmp_path, cache_dir=cache / "bun", lock=locked.lock
    )
    assert "< again >" in str(ok(again)) and "installing" not in again.logs
    after = sorted((p, p.stat().st_mtime_ns) for p in deps_dir.rglob("*") if not p.is_symlink())
    assert before == after


@pytest.mark.usefixtures("registry")
@pytest.mark.parametrize("specifier", ["npm:cowsay@1.5.0", "cowsay"])
def test_bun_preview_locks_on_the_fly(
    bun: BunRuntime, tmp_path: Path, cache_root: Path, specifier: str
) -> None:
    """A job without a stored lock (a preview) is locked, installed and run in one go."""
    code = COWSAY.format(specifier=specifier)
    ran = run_job(bun, code, {"text": "moo"}, tmp_path, timeout_s=90, cache_dir=cache_root / "bun")
    assert "< moo >" in str(ok(ran))


@pytest.mark.usefixtures("registry")
def test_bun_job_uses_exactly_the_lock(bun: BunRuntime, tmp_path: Path, cache_root: Path) -> None:
    """A bare import runs the version the lock pins (not the latest), and a package the lock
    does not have is not fetched by auto-install: the job fails naming it."""
    locked, logs = lock_script(
        bun, COWSAY.format(specifier="cowsay@1.4.0"), tmp_path, cache_dir=cache_root / "bun"
    )
    assert locked.lock, logs
    version = (
        'import * as cowsay from "cowsay";\n'
        "export function main() {\n"
        '  return require("cowsay/package.json").version;\n'
        "}\n"
    )
    ran = run_job(bun, version, {}, tmp_path, cache_dir=cache_root / "bun", lock=locked.lock)
    assert ok(ran) == "1.4.0"
    missing = 'import pad from "left-pad";\nexport function main() {\n  return pad("1", 3);\n}\n'
    ran = run_job(bun, missing, {}, tmp_path, cache_dir=cache_root / "bun", lock=locked.lock)
    assert not ran.outcome.success
    assert "left-pad" in ran.outcome.result_json


@pytest.mark.usefixtures("registry")
def test_bun_unknown_package_fails_the_lock(
    bun: BunRuntime, tmp_path: Path, cache_root: Path
) -> None:
    code = 'import x from "this-package-does-not-exist-gristmill";\nexport function main() {}\n'
    message = lock_error(bun, code, tmp_path, cache_root)
    assert "this-package-does-not-exist-gristmill" in message and "404" in message
    # The same through a job: it fails before running, with the resolver's message.
    ran = run_job(bun, code, {}, tmp_path, cache_dir=cache_root / "bun")
    assert not ran.outcome.success and "LockError" in ran.outcome.result_json
    assert "this-package-does-not-exist-gristmill" in ran.outcome.result_json


@pytest.mark.usefixtures("registry")
def test_bun_missing_version_fails_the_lock(
    bun: BunRuntime, tmp_path: Path, cache_root: Path
) -> None:
    message = lock_error(bun, COWSAY.format(specifier="cowsay@999.0.0"), tmp_path, cache_root)
    assert 'No version matching "999.0.0"' in message and "cowsay" in message


def test_bun_conflicting_versions_fail_the_job(
    bun: BunRuntime, tmp_path: Path, cache_root: Path
) -> None:
    code = (
        'import a from "cowsay@1.5.0";\nimport b from "cowsay@1.4.0";\nexport function main() {}\n'
    )
    ran = run_job(bun, code, {}, tmp_path, cache_dir=cache_root / "bun")
    assert not ran.outcome.success and "LockError" in ran.outcome.result_json
    assert "1.5.0 (line 1)" in ran.outcome.result_json


def test_bun_lock_uses_the_worker_registry(
    bun: BunRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``NPM_CONFIG_REGISTRY`` of the worker reaches bun install (here a closed port)."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", f"http://127.0.0.1:{port}/")
    code = 'import x from "left-pad@1.3.0";\nexport function main() {}\n'
    message = lock_error(bun, code, tmp_path, tmp_path / "fresh-cache")
    assert "ConnectionRefused" in message and "left-pad" in message


@pytest.mark.usefixtures("registry")
def test_deno_locks_installs_and_runs_cowsay(
    deno: DenoRuntime, tmp_path: Path, cache_root: Path
) -> None:
    code = COWSAY.format(specifier="npm:cowsay@1.5.0")
    locked, logs = lock_script(deno, code, tmp_path, cache_dir=cache_root / "deno")
    assert locked.lock, logs
    parsed = json.loads(locked.lock)
    assert parsed["specifiers"]["npm:cowsay@1.5.0"] == "1.5.0"
    assert "cowsay@1.5.0" in parsed["npm"]
    ran = run_job(
        deno, code, {"text": "moo"}, tmp_path, cache_dir=cache_root / "deno", lock=locked.lock
    )
    assert "< moo >" in str(ok(ran))
    # An import the lock does not pin fails the job instead of being resolved anew.
    other = 'import pad from "npm:left-pad@1.3.0";\nexport function main() {\n  return 1;\n}\n'
    ran = run_job(deno, other, {}, tmp_path, cache_dir=cache_root / "deno", lock=locked.lock)
    assert not ran.outcome.success and "lockfile is out of date" in ran.outcome.result_json


@pytest.mark.usefixtures("registry")
def test_deno_missing_version_fails_the_lock(
    deno: DenoRuntime, tmp_path: Path, cache_root: Path
) -> None:
    code = COWSAY.format(specifier="npm:cowsay@999.0.0")
    message = lock_error(deno, code, tmp_path, cache_root)
    assert "Could not find npm package 'cowsay' matching '999.0.0'" in message


def test_deno_job_without_dependencies_keeps_no_lock(deno: DenoRuntime, tmp_path: Path) -> None:
    ctx = make_context(deno, "export function main() {\n  return 1;\n}\n", {}, tmp_path)
    recipe = deno.prepare(ctx)
    assert isinstance(recipe, Recipe)
    assert "--no-lock" in recipe.argv and "--frozen" not in recipe.argv
    assert os.path.isabs(recipe.argv[0])
