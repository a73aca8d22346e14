"""The deployment files of ``deploy/`` hold to the code and the README (issue 15, point 7).

Nothing here builds an image or starts a container (there is neither docker nor a cluster in
CI); the files are parsed and compared with what they name:

- **Settings.** Every environment variable a Gristmill container is given (the Dockerfile's
  ``ENV``, the compose services', the Kubernetes containers' ``env`` and the ConfigMap and
  Secret they load) is one ``config.py`` reads, found in its source (every ``env.get`` or
  ``reader.<kind>`` call with a name), so that a misspelt or removed setting fails here rather
  than being silently ignored in production. Two kinds of exceptions, each listed below with
  who reads it: uvicorn's ``FORWARDED_ALLOW_IPS`` (checked in uvicorn's own source and in
  docs/deploy.md), and uv's own variables in the Dockerfile.
- **Probes.** Every health check (compose, Caddy, Kubernetes) uses ``/api/health/live`` or
  ``/api/health/ready``; the Kubernetes servers' liveness probe uses the first and their
  readiness probe the second; once the app has health routes, both paths are among them.
- **The image installs only what the README's commands install.** The rule: every line of
  the Dockerfile that installs something (``FROM``, ``apt-get install``, ``pip install``,
  ``uv ...``, ``npm ...``, ``COPY --from``) maps to a requirement of :data:`README_SAYS`,
  each the README's own words, and the README must still say them; nothing is downloaded any
  other way (no ``curl``, ``wget``, ``git`` or ``ADD``). Concretely: the base images are
  Python (3.11+) and, for the UI build stage only, Node.js (20+); ``apt-get`` installs only
  ``postgresql`` (the binaries the embedded database uses when present); ``pip`` installs
  only ``uv``; ``uv`` only syncs the locked workspace (what ``uv run`` does); ``npm`` only runs
  ``npm ci`` and the build. The default command is the README's start command.
"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from gristmill.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
CADDYFILE = DEPLOY / "Caddyfile"
ENV_EXAMPLE = DEPLOY / "env.example"
CONFIG_PY = ROOT / "core" / "src" / "gristmill" / "config.py"
README = ROOT / "README.md"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

#: The health endpoints (issue 15, point 1): liveness, then readiness.
LIVE = "/api/health/live"
READY = "/api/health/ready"
PROBES = {LIVE, READY}

#: Settings read by a library Gristmill runs rather than by config.py: name -> (module whose
#: source must read it).
LIBRARY_SETTINGS = {"FORWARDED_ALLOW_IPS": "uvicorn.config"}
#: uv's own variables, set in the image so that `uv run` at start neither re-resolves nor
#: downloads a Python; they are not Gristmill settings.
UV_SETTINGS = {"UV_FROZEN", "UV_PYTHON_DOWNLOADS"}

#: What the README says must be on the machine or is run, word for word (whitespace aside):
#: each kind of install line of the Dockerfile is allowed by one of these.
README_SAYS = {
    "python": "Python 3.11+ and pip",
    "node": "Node.js 20+ with npm (to build the web UI",
    "postgres": "Postgres binaries are used if present",
    "uv": "pip install uv && uv run gristmill up",
    "npm": "`npm ci` and `vite build` in `frontend/`",
}
START_COMMAND = ["uv", "run", "gristmill", "up"]


# --- Reading the files ------------------------------------------------------------------


def config_setting_names() -> set[str]:
    """The variable names config.py reads: first arguments of ``env.get(...)`` and
    ``reader.<kind>(...)`` calls (how every setting is read there)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(CONFIG_PY.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Name) and owner.id in ("env", "reader")):
            continue
        if node.args and isinstance(node.args[0], ast.Constant):
            value = node.args[0].value
            if isinstance(value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
                names.add(value)
    return names


SETTINGS = config_setting_names()
ALLOWED = SETTINGS | set(LIBRARY_SETTINGS)


def kubernetes_documents() -> list[tuple[Path, dict[str, Any]]]:
    docs: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                docs.append((path, doc))
    return docs


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def gristmill_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if str(service.get("image", "")).startswith("gristmill")
    }


def gristmill_containers() -> list[tuple[str, dict[str, Any]]]:
    """(Deployment name, container) of every container running the Gristmill image."""
    found = []
    for _, doc in kubernetes_documents():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container["image"].startswith("gristmill"):
                    found.append((doc["metadata"]["name"], container))
    return found


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a RUN line, split at ``&&``, ``||``, ``;`` and ``|``, each
    without the shell keywords that may start it (``if``, ``then``, ``do``...)."""
    commands = []
    for part in re.split(r"&&|\|\||;|\|", script):
        words = shlex.split(part)
        while words and words[0] in ("if", "then", "else", "do", "done", "fi", "while"):
            words = words[1:]
        if words:
            commands.append(words)
    return commands


def readme_text() -> str:
    return " ".join(README.read_text(encoding="utf-8").split())


# --- Every file parses, and names exist -------------------------------------------------


def test_every_file_parses() -> None:
    """The YAML files load, the Dockerfile splits into instructions, and the Kubernetes
    folder's kustomization lists exactly its manifests."""
    assert compose()["services"]
    assert dockerfile_instructions()
    kinds = {doc["kind"] for _, doc in kubernetes_documents()}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "Kustomization"} <= kinds
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    manifests = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_every_file_is_documented() -> None:
    """docs/deploy.md names each file of deploy/ (its section says how to use it)."""
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name != ".gitignore":
            assert path.name in doc, f"docs/deploy.md does not name {path.relative_to(ROOT)}"


def test_config_names_are_found() -> None:
    """The extraction above sees config.py's settings (else every check below is empty)."""
    assert {"DATABASE_URL", "MODE", "WORKER_GROUP", "WORKER_TAGS", "NUM_WORKERS"} <= SETTINGS
    assert {"GRISTMILL_INSTANCE_KEY", "SUPERADMIN_SECRET", "BASE_INTERNAL_URL"} <= SETTINGS


@pytest.mark.parametrize("name", sorted(LIBRARY_SETTINGS))
def test_library_setting_is_read_and_documented(name: str) -> None:
    import importlib

    module = importlib.import_module(LIBRARY_SETTINGS[name])
    assert f'"{name}"' in inspect.getsource(module), f"{module.__name__} no longer reads {name}"
    assert f"`{name}`" in DEPLOY_DOC.read_text(encoding="utf-8")


def test_dockerfile_sets_only_settings() -> None:
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            names = {pair.split("=", 1)[0] for pair in shlex.split(rest)}
            assert names <= ALLOWED | UV_SETTINGS, names - ALLOWED - UV_SETTINGS


def test_compose_sets_only_settings() -> None:
    services = gristmill_services()
    assert {"server-1", "server-2", "worker-default", "worker-native"} <= set(services)
    for name, service in services.items():
        unknown = set(service["environment"]) - ALLOWED
        assert not unknown, f"compose service {name} sets {unknown}, which config.py never reads"


def test_compose_variables_are_in_env_example() -> None:
    """Every ``${VAR}`` the compose file interpolates is in env.example, for the user to set."""
    example = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text(encoding="utf-8")))
    assert used == example


def test_kubernetes_sets_only_settings() -> None:
    containers = gristmill_containers()
    assert {name for name, _ in containers} >= {
        "gristmill-server",
        "gristmill-worker-default",
        "gristmill-worker-native",
    }
    sources = {
        (doc["kind"], doc["metadata"]["name"]): doc
        for _, doc in kubernetes_documents()
        if doc["kind"] in ("ConfigMap", "Secret")
    }
    for name, container in containers:
        unknown = {item["name"] for item in container.get("env", [])} - ALLOWED
        assert not unknown, f"{name} sets {unknown}, which config.py never reads"
        for ref in container.get("envFrom", []):
            kind, key = (
                ("ConfigMap", "configMapRef") if "configMapRef" in ref else ("Secret", "secretRef")
            )
            source = sources[(kind, ref[key]["name"])]
            keys = set(source.get("data", {})) | set(source.get("stringData", {}))
            assert keys and not keys - ALLOWED, f"{kind} {ref[key]['name']}: {keys - ALLOWED}"


#: Stand-ins for the values the user sets (compose's ``${VAR}``, the Secret's ``change-me``):
#: a valid instance key, so that the rest of each environment is what is checked.
_USER_VALUES = {
    "GRISTMILL_INSTANCE_KEY": "ab" * 32,
    "POSTGRES_PASSWORD": "pw",
    "SUPERADMIN_SECRET": "s3cret",
}


def _fill(name: str, value: object) -> str:
    text = str(value)
    if text == "change-me" or text.startswith("${"):
        return _USER_VALUES.get(name, "x")
    return re.sub(r"\$\{([A-Z_]+)[^}]*\}", lambda m: _USER_VALUES.get(m.group(1), "x"), text)


def container_environments() -> dict[str, dict[str, str]]:
    """The environment each Gristmill service and container starts with (image ``ENV``
    included), with the user's values filled in."""
    image_env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            image_env.update(pair.split("=", 1) for pair in shlex.split(rest))
    envs = {}
    for name, service in gristmill_services().items():
        env = {k: _fill(k, v) for k, v in service["environment"].items()}
        envs[f"compose:{name}"] = {**image_env, **env}
    sources = {
        doc["metadata"]["name"]: {**doc.get("data", {}), **doc.get("stringData", {})}
        for _, doc in kubernetes_documents()
        if doc["kind"] in ("ConfigMap", "Secret")
    }
    for name, container in gristmill_containers():
        env = dict(image_env)
        for ref in container.get("envFrom", []):
            source = (ref.get("configMapRef") or ref["secretRef"])["name"]
            env.update({k: _fill(k, v) for k, v in sources[source].items()})
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = _fill(item["name"], item["value"])
            else:  # a key of the ConfigMap or Secret, which must be there
                ref = item["valueFrom"].get("secretKeyRef") or item["valueFrom"]["configMapKeyRef"]
                env[item["name"]] = _fill(item["name"], sources[ref["name"]][ref["key"]])
        envs[f"kubernetes:{name}"] = env
    return envs


@pytest.mark.parametrize("where", sorted(container_environments()))
def test_settings_values_are_accepted(where: str) -> None:
    """Gristmill starts with each environment as given: every value is one config.py takes
    (a bad one would stop the process at start, naming the variable)."""
    env = container_environments()[where]
    settings = Settings.from_env(env)
    assert settings.mode in ("server", "worker")
    assert settings.database_url.startswith("postgresql://")
    assert settings.instance_key is not None
    assert str(settings.data_dir) == "/data"


def test_worker_groups_are_windmills() -> None:
    """Each worker group, in compose and Kubernetes, names its group and its tags, runs in
    worker mode, and is told where jobs reach the API (not the worker's own 127.0.0.1)."""
    groups = {}
    for name, service in gristmill_services().items():
        env = service["environment"]
        if env["MODE"] == "worker":
            groups[("compose", name)] = env
    for name, container in gristmill_containers():
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        if env["MODE"] == "worker":
            groups[("kubernetes", name)] = env
    config = next(d for _, d in kubernetes_documents() if d["kind"] == "ConfigMap")
    for (where, name), env in groups.items():
        assert env["WORKER_GROUP"] in name
        assert env["WORKER_TAGS"]
        internal = env.get("BASE_INTERNAL_URL") or config["data"]["BASE_INTERNAL_URL"]
        assert "127.0.0.1" not in internal and "localhost" not in internal, (where, name)
    assert {env["WORKER_GROUP"] for env in groups.values()} == {"default", "native"}


# --- Probes -----------------------------------------------------------------------------


def _paths(text: str) -> set[str]:
    return set(re.findall(r"/api/health/[a-z]+", text))


def test_probe_paths_are_the_health_endpoints() -> None:
    used = _paths(COMPOSE.read_text()) | _paths(CADDYFILE.read_text())
    for path in KUBERNETES.glob("*.yaml"):
        used |= _paths(path.read_text())
    assert used == PROBES


def test_kubernetes_server_probes() -> None:
    (server,) = [c for name, c in gristmill_containers() if name == "gristmill-server"]
    assert server["livenessProbe"]["httpGet"]["path"] == LIVE
    assert server["readinessProbe"]["httpGet"]["path"] == READY
    service = next(
        d
        for _, d in kubernetes_documents()
        if d["kind"] == "Service" and d["metadata"]["name"] == "gristmill"
    )
    assert service["spec"]["selector"].items() <= _pod_labels("gristmill-server").items()


def _pod_labels(deployment: str) -> dict[str, str]:
    doc = next(
        d
        for _, d in kubernetes_documents()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == deployment
    )
    return doc["spec"]["template"]["metadata"]["labels"]


def test_compose_proxy_checks_readiness_of_every_server() -> None:
    """Caddy's upstreams are exactly the compose servers, each checked on /api/health/ready."""
    caddy = CADDYFILE.read_text(encoding="utf-8")
    (upstreams,) = re.findall(r"reverse_proxy ([^{]+)\{", caddy)
    servers = {n for n, s in gristmill_services().items() if s["environment"]["MODE"] == "server"}
    assert set(upstreams.split()) == {f"{name}:8000" for name in servers}
    assert re.search(rf"health_uri {READY}\s", caddy)
    for name in servers:
        assert LIVE in " ".join(gristmill_services()[name]["healthcheck"]["test"])


def test_probe_paths_are_routes_of_the_app() -> None:
    """Both probe paths are GET operations of the app (its OpenAPI document, which lists
    every route, as tests/integration/test_route_access.py reads it), once health routes exist.

    They come with another piece of issue 15 (supervised database and health checks); until
    it is merged no path is under /api/health/ and only the list above is checked.
    """
    from gristmill.api.app import openapi_document

    paths = openapi_document()["paths"]
    health = {path for path in paths if path.startswith("/api/health/")}
    assert "/api/version" in paths  # the document is the app's, not an empty one
    for probe in PROBES:
        assert "get" in paths.get(probe, {}), f"no GET {probe}; health routes: {health}"


# --- The image installs what the README installs ----------------------------------------


def test_readme_still_says_what_the_image_relies_on() -> None:
    text = readme_text()
    for key, words in README_SAYS.items():
        assert words in text, f"README no longer says {words!r} ({key})"


def test_dockerfile_installs_only_what_the_readme_installs() -> None:
    """See the module's docstring for the rule."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    for keyword, rest in dockerfile_instructions():
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
        elif keyword == "FROM":
            image, _, stage = rest.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            _check_base_image(image)
            stages.add(stage.strip())
        elif keyword == "ADD":
            pytest.fail(f"ADD downloads or unpacks outside the README's commands: {rest}")
        elif keyword == "COPY" and "--from=" in rest:
            source = re.search(r"--from=(\S+)", rest)
            assert source and source.group(1) in stages, f"COPY from an image: {rest}"
        elif keyword == "RUN":
            for command in shell_commands(rest):
                _check_command(command)


def test_node_only_builds_the_ui() -> None:
    """Node.js is a build stage's: the image that runs is Python's, and the stage's
    ``npm run build`` is the README's ``vite build``."""
    images = [rest.split()[0] for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    assert images[0].startswith("node:") and images[-1].startswith("python:"), images
    package = yaml.safe_load((ROOT / "frontend" / "package.json").read_text(encoding="utf-8"))
    assert package["scripts"]["build"] == "vite build"


def _check_base_image(image: str) -> None:
    name, _, tag = image.partition(":")
    version = re.match(r"(\d+)(?:\.(\d+))?", tag)
    assert version, f"base image {image} without a version"
    major, minor = int(version.group(1)), int(version.group(2) or 0)
    if name == "python":  # README_SAYS["python"]
        assert (major, minor) >= (3, 11), image
    elif name == "node":  # README_SAYS["node"]
        assert major >= 20, image
    else:
        pytest.fail(f"base image {image} is not one the README asks for")


def _check_command(words: list[str]) -> None:
    program = Path(words[0]).name
    options = [w for w in words[1:] if not w.startswith("-")]
    if program in ("curl", "wget", "git", "dpkg", "apt", "pip3", "npx", "yarn", "pnpm"):
        pytest.fail(f"{' '.join(words)}: not one of the README's commands")
    if program == "apt-get":
        if options[:1] == ["install"]:
            assert options[1:] == ["postgresql"], words  # README_SAYS["postgres"]
        else:
            assert options[:1] == ["update"], words
    elif program == "pip":
        assert options == ["install", "uv"], words  # README_SAYS["uv"]
    elif program == "uv":
        assert options == ["sync"] and "--locked" in words, words  # README_SAYS["uv"]
    elif program == "npm":
        assert options in (["ci"], ["run", "build"]), words  # README_SAYS["npm"]


def test_image_runs_the_readme_start_command_as_a_user() -> None:
    instructions = dockerfile_instructions()
    cmd = [rest for keyword, rest in instructions if keyword == "CMD"][-1]
    assert yaml.safe_load(cmd) == START_COMMAND
    assert " ".join(START_COMMAND) in readme_text()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    env = {}
    for keyword, rest in instructions:
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    exposed = {
        int(p.split("/")[0]) for k, rest in instructions if k == "EXPOSE" for p in rest.split()
    }
    assert exposed == {Settings().port}
    volumes = [yaml.safe_load(rest) for keyword, rest in instructions if keyword == "VOLUME"]
    assert [env["GRISTMILL_DATA_DIR"]] in volumes
