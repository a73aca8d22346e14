"""What a script's imports ask of npm, and the lock text Bun and Deno store.

Bun: the package imports of a script become a generated ``package.json`` (Windmill does the
same), ``bun install`` resolves it into ``bun.lock``, and the stored lock is Windmill's
``package.json + "\\n//bun.lock\\n" + bun.lock``. Deno: the ``npm:``, ``jsr:`` and URL imports
become an entrypoint that only imports them, and the lock is Deno's own ``deno.lock``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gristmill import Mount, ScriptError, toolchain_mounts

from gristmill_typescript.imports import ImportSource, import_sources, rewrite_sources

__all__ = [
    "BUN_LOCKB_SPLIT",
    "BUN_LOCK_SPLIT",
    "BunLock",
    "PackageSpec",
    "deno_entrypoint",
    "deno_entrypoint_from_lock",
    "deno_inputs",
    "join_bun_lock",
    "network_env",
    "network_mounts",
    "package_json",
    "package_of",
    "pinned_removed",
    "split_bun_lock",
]

#: Windmill's separators between the generated package.json and Bun's lock (text, or the
#: binary ``bun.lockb`` of Bun before 1.2 in base64).
BUN_LOCK_SPLIT: Final = "\n//bun.lock\n"
BUN_LOCKB_SPLIT: Final = "\n//bun.lockb\n"

_NPM: Final = "npm:"
# ``node:fs``, ``bun:sqlite``, ``https://...``, ``jsr:...``, ``file:...``, ``data:...``.
_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_NAME: Final = re.compile(r"^(?:@[A-Za-z0-9~-][A-Za-z0-9._~-]*/)?[A-Za-z0-9_~-][A-Za-z0-9._~-]*$")

# Node's built-in modules (``require("module").builtinModules``, without the ``node:``-only
# ones, which the scheme rule covers), and Bun's own ``bun``: never installed.
_BUILTINS: Final = frozenset(
    [
        "_http_agent",
        "_http_client",
        "_http_common",
        "_http_incoming",
        "_http_outgoing",
        "_http_server",
        "_stream_duplex",
        "_stream_passthrough",
        "_stream_readable",
        "_stream_transform",
        "_stream_wrap",
        "_stream_writable",
        "_tls_common",
        "_tls_wrap",
        "assert",
        "async_hooks",
        "buffer",
        "child_process",
        "cluster",
        "console",
        "constants",
        "crypto",
        "dgram",
        "diagnostics_channel",
        "dns",
        "domain",
        "events",
        "fs",
        "http",
        "http2",
        "https",
        "inspector",
        "module",
        "net",
        "os",
        "path",
        "perf_hooks",
        "process",
        "punycode",
        "querystring",
        "readline",
        "repl",
        "stream",
        "string_decoder",
        "sys",
        "timers",
        "tls",
        "trace_events",
        "tty",
        "url",
        "util",
        "v8",
        "vm",
        "wasi",
        "worker_threads",
        "zlib",
        "bun",
    ]
)

#: The worker's settings that decide how a resolver reaches its registry. The resolver's
#: environment is complete (the worker's own is not inherited), so these are passed on
#: explicitly, and only these.
_NETWORK_ENV: Final = (
    "NPM_CONFIG_REGISTRY",
    "npm_config_registry",
    "BUN_CONFIG_REGISTRY",
    "BUN_CONFIG_TOKEN",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    # Deno's own: its certificate file, registry tokens and JSR mirror.
    "DENO_CERT",
    "DENO_AUTH_TOKENS",
    "JSR_URL",
)


#: Those of them that name certificate files or directories (``SSL_CERT_DIR`` may list several).
_CERTIFICATE_ENV: Final = ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "DENO_CERT")


def network_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The registry, proxy and certificate settings of ``environ`` (the worker's)."""
    source = os.environ if environ is None else environ
    return {name: source[name] for name in _NETWORK_ENV if source.get(name)}


def network_mounts(env: Mapping[str, str]) -> list[Mount]:
    """Read-only mounts of the certificate files and directories ``env`` names, so that a lock
    or install step in the sandbox can read them. The system directories need none (the
    sandbox has them, and its /etc holds the certificate stores: ``ssl/certs``,
    ``pki/ca-trust``...); a file elsewhere under /etc cannot be shown there. Optional: a
    setting naming a missing file is the resolver's to report, as without a sandbox."""
    paths = [
        part
        for name in _CERTIFICATE_ENV
        for part in env.get(name, "").split(":")
        if part.startswith("/")
    ]
    return [Mount(m.source, optional=True) for m in toolchain_mounts(prefixes=paths)]


# -- Bun ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageSpec:
    """An import of an npm package: ``npm:@scope/pkg@^2/sub`` is ``@scope/pkg``, ``^2``,
    ``/sub``."""

    name: str
    version: str | None
    subpath: str

    @property
    def unpinned(self) -> str:
        """The specifier without ``npm:`` or version, as it resolves in ``node_modules``."""
        return self.name + self.subpath


def package_of(specifier: str) -> PackageSpec | None:
    """The package an import specifier names, or ``None`` for a relative or absolute path, a
    URL, a ``node:``/``bun:`` module or a Node built-in.

    A version ends at the first ``/`` after the ``@`` (what follows is a path in the
    package), so a version that contains ``/`` (a GitHub reference) cannot be written in an
    import.
    """
    spec = specifier.removeprefix(_NPM)
    if not spec or spec[0] in "./#\\" or _SCHEME.match(spec):
        return None
    scope = ""
    rest = spec
    if spec.startswith("@"):
        scope, slash, rest = spec.partition("/")
        if not slash:
            return None
        scope += "/"
    head, slash, tail = rest.partition("/")
    name, at, version = head.partition("@")
    full = scope + name
    # ``punycode/``: a trailing slash names the npm package that shadows a built-in.
    builtin = not scope and name in _BUILTINS and not (slash and not tail)
    if not _NAME.match(full) or builtin:
        return None
    return PackageSpec(full, version if at else None, slash + tail)


def _package_imports(source: str) -> list[tuple[ImportSource, PackageSpec]]:
    found: list[tuple[ImportSource, PackageSpec]] = []
    for imported in import_sources(source):
        if imported.type_only:  # erased before the script runs: nothing to install
            continue
        package = package_of(imported.specifier)
        if package is not None:
            found.append((imported, package))
    return found


def package_json(source: str) -> str | None:
    """The ``package.json`` of the packages ``source`` imports (``None`` when it imports
    none): a version written in an import is kept, an import without one is ``latest`` (the
    lock then pins what ``latest`` was). Two versions of one package are refused."""
    versions: dict[str, tuple[str, int]] = {}
    unversioned: set[str] = set()
    for imported, package in _package_imports(source):
        if package.version is None:
            unversioned.add(package.name)
            continue
        if package.version == "":
            raise ScriptError(
                f"'{imported.specifier}' has an empty version: write "
                f"'{package.name}@<version>' or '{package.name}'",
                line=imported.line,
            )
        earlier = versions.setdefault(package.name, (package.version, imported.line))
        if earlier[0] != package.version:
            raise ScriptError(
                f"{package.name} is imported at two versions: {earlier[0]} (line {earlier[1]}) "
                f"and {package.version} (line {imported.line}); a script gets one version of "
                "a package, so write the same one in every import",
                line=imported.line,
            )
    dependencies = {name: version for name, (version, _) in versions.items()}
    for name in unversioned:
        dependencies.setdefault(name, "latest")
    if not dependencies:
        return None
    document = {"dependencies": dict(sorted(dependencies.items()))}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def pinned_removed(source: str) -> str:
    """``source`` with its package imports written as they resolve in ``node_modules``:
    ``npm:cowsay@1.5.0`` is ``cowsay``, ``@scope/pkg@^2/sub`` is ``@scope/pkg/sub`` (the
    version is the lock's business, and Bun, not auto-installing, would look for a package
    named ``cowsay@1.5.0``)."""

    def unpinned(imported: ImportSource) -> str | None:
        package = package_of(imported.specifier)
        return package.unpinned if package is not None else None

    return rewrite_sources(source, unpinned)


@dataclass(frozen=True)
class BunLock:
    """A stored Bun lock, split: the package.json and ``bun.lock`` (text) or ``bun.lockb``."""

    package_json: str
    lock: str | bytes

    @property
    def lock_file(self) -> str:
        return "bun.lock" if isinstance(self.lock, str) else "bun.lockb"


def join_bun_lock(package_json: str, lock: str | bytes) -> str:
    if isinstance(lock, bytes):
        return package_json + BUN_LOCKB_SPLIT + base64.b64encode(lock).decode("ascii")
    return package_json + BUN_LOCK_SPLIT + lock


def split_bun_lock(lock: str) -> BunLock:
    """The parts of a stored lock; ``ValueError`` when it is not a Bun lock."""
    package, found, text = lock.partition(BUN_LOCK_SPLIT)
    if found:
        return BunLock(package, text)
    package, found, encoded = lock.partition(BUN_LOCKB_SPLIT)
    if found:
        return BunLock(package, base64.b64decode(encoded.strip(), validate=True))
    raise ValueError(
        "this lock is not a Bun lock (a package.json, then '//bun.lock' and the lock); "
        "lock the script again"
    )


# -- Deno -----------------------------------------------------------------------------------

_DENO_REMOTE: Final = ("npm:", "jsr:", "https://", "http://")
_DENO_HEADER: Final = "// The imports Deno locks for this script (written by Gristmill).\n"
# Modules of the lock's "remote" section an entrypoint may import as such (JSON or Wasm ones
# need import attributes; they are reached through the modules that import them anyway).
_SCRIPT_SUFFIXES: Final = (".ts", ".tsx", ".mts", ".js", ".jsx", ".mjs", ".cjs")


def deno_inputs(source: str) -> str | None:
    """The ``npm:``, ``jsr:`` and URL imports of ``source`` as an entrypoint that imports
    them (sorted, one per line), or ``None`` when it has none."""
    specifiers = {
        imported.specifier
        for imported in import_sources(source)
        if not imported.type_only and imported.specifier.startswith(_DENO_REMOTE)
    }
    return deno_entrypoint(specifiers) if specifiers else None


def deno_entrypoint(specifiers: set[str] | list[str]) -> str:
    lines = (f"import {json.dumps(specifier)};\n" for specifier in sorted(set(specifiers)))
    return _DENO_HEADER + "".join(lines)


def deno_entrypoint_from_lock(lock: str) -> str:
    """An entrypoint importing everything a ``deno.lock`` pins at its top: its npm and JSR
    requirements and its remote modules. ``ValueError`` when ``lock`` is not a Deno lock."""
    try:
        parsed = json.loads(lock)
    except ValueError as exc:
        raise ValueError(f"this lock is not a deno.lock (not JSON: {exc}); lock again") from exc
    if not isinstance(parsed, dict) or "version" not in parsed:
        raise ValueError("this lock is not a deno.lock (no version); lock the script again")
    specifiers = [
        key
        for key in parsed.get("specifiers") or {}
        if isinstance(key, str) and key.startswith(("npm:", "jsr:"))
    ]
    specifiers += [
        url
        for url in parsed.get("remote") or {}
        if isinstance(url, str) and url.split("?", 1)[0].endswith(_SCRIPT_SUFFIXES)
    ]
    return deno_entrypoint(specifiers)
