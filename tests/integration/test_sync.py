"""A workspace synced as files with Windmill's own CLI (``windmill-cli`` 1.819.0, unchanged)
and with ``gristmill sync``: ``wmill sync pull`` into an empty folder, a round trip (pull,
edit one file, push, pull) that changes only that item, either CLI on the same folder, and
``gristmill workspace export | import`` into a workspace of another platform.

One platform per module behind a real HTTP server (the CLIs open their own connections);
a second platform for the import. Scripts here have no dependencies to lock, so a push does
not wait on a dependency job longer than a plain run.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from gristmill.server.cli import cli
from gristmill.sync.archive import read_archive
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, PgCluster
from gristmill.testing.served import ServedPlatform, admin_token, served_settings
from gristmill.testing.windmill_cli import WindmillCli

pytestmark = [pytest.mark.slow, pytest.mark.bundled_plugins]

WORKSPACE = "main"

HELLO = "def main(name: str = 'world'):\n    return f'hello {name}'\n"
SHOUT = "def main(text: str):\n    return text.upper()\n"
FLOW_VALUE: dict[str, Any] = {
    "modules": [
        {
            "id": "a",
            "summary": "Greet",
            "value": {
                "type": "rawscript",
                "language": "python3",
                "content": "def main(name: str):\n    return f'hi {name}'\n",
                "input_transforms": {"name": {"type": "javascript", "expr": "flow_input.name"}},
            },
        },
        {
            "id": "b",
            "value": {
                "type": "script",
                "path": "f/sync/shout",
                "input_transforms": {"text": {"type": "javascript", "expr": "results.a"}},
            },
        },
    ]
}


@dataclass
class Instance:
    url: str
    token: str
    http: httpx.Client

    def ok(self, r: httpx.Response) -> httpx.Response:
        assert r.status_code < 300, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
        return r

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.ok(self.http.post(f"/w/{WORKSPACE}{path}", json=body))

    def get(self, path: str, **params: Any) -> Any:
        return self.ok(self.http.get(f"/w/{WORKSPACE}{path}", params=params)).json()


@pytest.fixture(scope="module")
def serve(pg_cluster: PgCluster) -> Iterator[Callable[[], Instance]]:
    """Starts platforms behind real HTTP servers (each on its own database), stopped at the
    module's end."""
    with contextlib.ExitStack() as stack:

        def start() -> Instance:
            settings = stack.enter_context(
                served_settings(
                    pg_cluster,
                    SUPERADMIN_SECRET,
                    "gm-sync-",
                    num_workers=1,
                    database_connections=6,
                )
            )
            server = ServedPlatform(settings)
            url = stack.enter_context(server)
            admin = server.new_admin
            assert admin is not None
            token = admin_token(url, admin.email, admin.password)
            http = stack.enter_context(
                httpx.Client(
                    base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=120
                )
            )
            return Instance(url, token, http)

        yield start


def _wait_deployed(gm: Instance, path: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        script = gm.get(f"/scripts/get/p/{path}")
        status = gm.get(f"/scripts/deployment_status/h/{script['hash']}")
        if status["status"] != "locking":
            assert status["status"] == "deployed", status
            return
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


@pytest.fixture(scope="module")
def gm(serve: Callable[[], Instance]) -> Instance:
    """The module's instance, holding one item of each kind the sync carries."""
    gm = serve()
    gm.post("/folders/create", {"name": "sync", "summary": "synced items"})
    gm.post(
        "/scripts/create",
        {"path": "f/sync/hello", "content": HELLO, "language": "python3", "summary": "Hello"},
    )
    gm.post("/scripts/create", {"path": "f/sync/shout", "content": SHOUT, "language": "python3"})
    _wait_deployed(gm, "f/sync/hello")
    _wait_deployed(gm, "f/sync/shout")
    gm.post(
        "/flows/create",
        {"path": "f/sync/greet", "summary": "Greet loudly", "value": FLOW_VALUE},
    )
    gm.post(
        "/variables/create",
        {
            "path": "f/sync/plain",
            "value": "visible",
            "is_secret": False,
            "description": "a plain variable",
        },
    )
    gm.post(
        "/variables/create",
        {"path": "f/sync/secret", "value": "s3cr3t", "is_secret": True, "description": ""},
    )
    gm.post("/resources/create", {"path": "f/sync/conf", "value": {"n": 1}, "resource_type": "any"})
    # A type that stores a file: the CLIs keep the resource's content in a file of its own.
    gm.post("/resources/type/create", {"name": "c_cert", "schema": {}, "format_extension": "pem"})
    gm.post(
        "/resources/create",
        {
            "path": "f/sync/cert",
            "value": {"content": "-----BEGIN-----\n"},
            "resource_type": "c_cert",
        },
    )
    gm.post(
        "/schedules/create",
        {
            "path": "f/sync/nightly",
            "schedule": "0 0 3 * * *",
            "timezone": "UTC",
            "script_path": "f/sync/hello",
            "is_flow": False,
            "args": {"name": "night"},
            "enabled": False,
        },
    )
    gm.post(
        "/http_triggers/create",
        {
            "path": "f/sync/hello_route",
            "script_path": "f/sync/hello",
            "is_flow": False,
            "route_path": "sync/hello",
            "http_method": "get",
            "authentication_method": "none",
            "request_type": "sync",
            "is_static_website": False,
            # A route of its workspace only: the copy pushed to another workspace may hold it too.
            "workspaced_route": True,
        },
    )
    return gm


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the CLI's own bookkeeping, by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not p.relative_to(root).as_posix().startswith((".wmill", "wmill", "home/"))
    }


SYNC_FLAGS = ("--yes", "--include-schedules", "--include-triggers")


def test_wmill_sync_pull_writes_every_item(gm: Instance, windmill_cli: WindmillCli) -> None:
    windmill_cli.add_workspace(gm.url, WORKSPACE, gm.token)
    windmill_cli("sync", "pull", *SYNC_FLAGS)
    tree = _tree(windmill_cli.cwd)
    assert tree["f/sync/hello.py"].decode() == HELLO
    meta = yaml.safe_load(tree["f/sync/hello.script.yaml"])
    assert meta["summary"] == "Hello" and meta["kind"] == "script"
    assert meta["schema"]["properties"]["name"]["default"] == "world"
    flow = yaml.safe_load(tree["f/sync/greet.flow/flow.yaml"])
    assert flow["summary"] == "Greet loudly"
    assert flow["value"]["modules"][0]["value"]["content"] == "!inline greet.inline_script.py"
    assert tree["f/sync/greet.flow/greet.inline_script.py"].decode().startswith("def main")
    assert yaml.safe_load(tree["f/sync/plain.variable.yaml"])["value"] == "visible"
    secret = yaml.safe_load(tree["f/sync/secret.variable.yaml"])
    assert secret["is_secret"] and secret["value"] != "s3cr3t"  # its ciphertext only
    assert yaml.safe_load(tree["f/sync/conf.resource.yaml"])["value"] == {"n": 1}
    assert tree["f/sync/cert.resource.file.pem"] == b"-----BEGIN-----\n"
    assert yaml.safe_load(tree["c_cert.resource-type.yaml"])["format_extension"] == "pem"
    assert yaml.safe_load(tree["f/sync/folder.meta.yaml"])["summary"] == "synced items"
    assert yaml.safe_load(tree["f/sync/nightly.schedule.yaml"])["schedule"] == "0 0 3 * * *"
    route = yaml.safe_load(tree["f/sync/hello_route.http_trigger.yaml"])
    assert route["route_path"] == "sync/hello"

    # The tar form holds the same entries; another archive type is refused as Windmill does
    # (the CLI falls back to tar on that exact message).
    tarball = f"/w/{WORKSPACE}/workspaces/tarball"
    zipped = gm.ok(gm.http.get(tarball, params={"archive_type": "zip"}))
    tarred = gm.ok(gm.http.get(tarball, params={"archive_type": "tar"}))
    assert tarred.headers["content-type"] == "application/x-tar"
    assert read_archive(tarred.content) == read_archive(zipped.content)
    # Asked for (`wmill sync pull --plain-secrets`), secrets come decrypted.
    clear = gm.ok(gm.http.get(tarball, params={"archive_type": "zip", "plain_secret": True}))
    secret_entry = read_archive(clear.content)["f/sync/secret.variable.json"]
    assert '"value": "s3cr3t"' in secret_entry
    refused = gm.http.get(tarball, params={"archive_type": "rar"})
    assert refused.status_code == 400 and "Invalid Archive Type rar" in refused.text


def test_wmill_round_trip_changes_only_the_edited_item(
    gm: Instance, windmill_cli: WindmillCli
) -> None:
    windmill_cli.add_workspace(gm.url, WORKSPACE, gm.token)
    windmill_cli("sync", "pull", *SYNC_FLAGS)
    before = _tree(windmill_cli.cwd)
    # Pushing what was just pulled changes nothing.
    out = windmill_cli("sync", "push", *SYNC_FLAGS)
    assert "0 changes to apply" in out, out
    hello = windmill_cli.cwd / "f/sync/hello.py"
    hello.write_text(HELLO.replace("hello", "good morning"))
    out = windmill_cli("sync", "push", *SYNC_FLAGS)
    assert "1 changes to apply" in out, out
    windmill_cli("sync", "pull", *SYNC_FLAGS)
    after = _tree(windmill_cli.cwd)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == ["f/sync/hello.py"], changed
    assert gm.get("/scripts/get/p/f/sync/hello")["content"] == HELLO.replace(
        "hello", "good morning"
    )


def test_wmill_sync_push_creates_every_item_in_an_empty_workspace(
    gm: Instance, new_windmill_cli: Callable[[str], WindmillCli]
) -> None:
    """A folder pulled from one workspace, pushed into an empty one: pulled back, the same
    files (secrets aside: their ciphertext opens only in the workspace that wrote it)."""
    source, target = new_windmill_cli("source"), new_windmill_cli("target")
    source.add_workspace(gm.url, WORKSPACE, gm.token)
    source("sync", "pull", *SYNC_FLAGS, "--skip-secrets")
    gm.ok(gm.http.post("/workspaces/create", json={"id": "copy", "name": "copy"}))
    target.add_workspace(gm.url, "copy", gm.token, name="copy")
    shutil.copytree(source.cwd / "f", target.cwd / "f")
    shutil.copy(source.cwd / "c_cert.resource-type.yaml", target.cwd)
    target("sync", "push", *SYNC_FLAGS, "--skip-secrets")
    pulled = new_windmill_cli("pulled")
    pulled.add_workspace(gm.url, "copy", gm.token, name="copy")
    pulled("sync", "pull", *SYNC_FLAGS, "--skip-secrets")
    assert _tree(pulled.cwd) == _tree(source.cwd)
    # What was created runs: the flow calls the script pushed beside it.
    job = gm.ok(gm.http.post("/w/copy/jobs/run_wait_result/f/f/sync/greet", json={"name": "x"}))
    assert job.json() == "HI X"

    # Files removed from the folder: `wmill sync push` deletes (archives, for a script) the
    # items in the workspace.
    for name in (
        "f/sync/plain.variable.yaml",
        "f/sync/nightly.schedule.yaml",
        "f/sync/hello_route.http_trigger.yaml",
        "f/sync/conf.resource.yaml",
    ):
        (target.cwd / name).unlink()
    # A whole flow folder: the CLI deletes the flow once per file of the folder (its second
    # delete finds nothing and must succeed, as on Windmill).
    shutil.rmtree(target.cwd / "f/sync/greet.flow")
    out = target("sync", "push", *SYNC_FLAGS, "--skip-secrets")
    assert "changes to apply" in out, out
    for gone in (
        "flows/exists/f/sync/greet",
        "variables/exists/f/sync/plain",
        "schedules/exists/f/sync/nightly",
        "http_triggers/exists/f/sync/hello_route",
        "resources/exists/f/sync/conf",
    ):
        assert gm.ok(gm.http.get(f"/w/copy/{gone}")).json() is False, gone


def gristmill(gm: Instance, *args: str, workspace: str = WORKSPACE, **env: str) -> str:
    """``gristmill ARGS --url --token --workspace``, run as a user runs it; its output."""
    result = CliRunner().invoke(
        cli, [*args, "--url", gm.url, "--token", gm.token, "--workspace", workspace], env=env
    )
    assert result.exit_code == 0, f"gristmill {args}: {result.output}{result.exception!r}"
    return result.output


def test_either_cli_on_the_same_folder(
    gm: Instance, windmill_cli: WindmillCli, tmp_path: Path
) -> None:
    """`gristmill sync pull` writes what `wmill sync pull` writes; an edit pushed by
    `gristmill sync push` is seen by `wmill`, and one pushed by `wmill` by `gristmill`."""
    windmill_cli.add_workspace(gm.url, WORKSPACE, gm.token)
    windmill_cli("sync", "pull", *SYNC_FLAGS)
    ours = tmp_path / "ours"
    gristmill(gm, "sync", "pull", str(ours))
    theirs = _tree(windmill_cli.cwd)
    assert _tree(ours) == theirs
    # Pulled again: nothing to write; pushed unchanged: nothing to push.
    assert "0 change(s) pulled" in gristmill(gm, "sync", "pull", str(ours))
    assert "0 item(s) pushed" in gristmill(gm, "sync", "push", str(ours))

    # gristmill pushes an edit of the schedule; wmill pulls exactly that change.
    schedule = ours / "f/sync/nightly.schedule.yaml"
    schedule.write_text(schedule.read_text().replace("0 0 3 * * *", "0 30 4 * * *"))
    assert "1 item(s) pushed" in gristmill(gm, "sync", "push", str(ours))
    windmill_cli("sync", "pull", *SYNC_FLAGS)
    assert _tree(windmill_cli.cwd) == _tree(ours)

    # wmill pushes an edit of the flow's inline script; gristmill pulls exactly that change.
    inline = windmill_cli.cwd / "f/sync/greet.flow/greet.inline_script.py"
    inline.write_text(inline.read_text().replace("hi ", "hey "))
    windmill_cli("sync", "push", *SYNC_FLAGS)
    out = gristmill(gm, "sync", "pull", str(ours))
    assert out.splitlines()[0] == "~ f/sync/greet.flow/greet.inline_script.py", out
    assert "1 change(s) pulled" in out
    assert _tree(windmill_cli.cwd) == _tree(ours)
    flow = gm.get("/flows/get/f/sync/greet")
    assert "hey " in flow["value"]["modules"][0]["value"]["content"]


def test_gristmill_pull_removes_what_the_workspace_no_longer_has(
    gm: Instance, tmp_path: Path
) -> None:
    gm.post(
        "/variables/create",
        {"path": "f/sync/temporary", "value": "x", "is_secret": False, "description": ""},
    )
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "README.md").write_text("# my windmill repo\n")
    gristmill(gm, "sync", "pull", str(folder))
    assert (folder / "f/sync/temporary.variable.yaml").is_file()
    gm.ok(gm.http.delete(f"/w/{WORKSPACE}/variables/delete/f/sync/temporary"))
    out = gristmill(gm, "sync", "pull", str(folder))
    assert "- f/sync/temporary.variable.yaml" in out
    assert not (folder / "f/sync/temporary.variable.yaml").exists()
    assert (folder / "README.md").is_file() and (folder / "f/sync/hello.py").is_file()


def test_export_and_import_into_another_instance(
    gm: Instance, serve: Callable[[], Instance], tmp_path: Path
) -> None:
    """An export without secrets holds none; with them, sealed (the clear value nowhere in
    the file); imported into a new workspace of another platform, every item is there, the
    secret readable again with the passphrase, and the flow runs."""
    plain = tmp_path / "plain.tar.gz"
    gristmill(gm, "workspace", "export", str(plain))
    assert b"f/sync/secret" not in _gunzip(plain)

    backup = tmp_path / "backup.tar.gz"
    out = gristmill(
        gm,
        "workspace",
        "export",
        str(backup),
        "--include-secrets",
        GRISTMILL_EXPORT_PASSPHRASE="correct horse",
    )
    assert "exported" in out
    raw = _gunzip(backup)
    assert b"f/sync/secret.variable.yaml" in raw and b"s3cr3t" not in raw

    other = serve()
    failed = CliRunner().invoke(
        cli,
        [
            "workspace",
            "import",
            str(backup),
            "--url",
            other.url,
            "--token",
            other.token,
            "--workspace",
            "moved",
            "--create",
        ],
        env={"GRISTMILL_EXPORT_PASSPHRASE": "wrong"},
    )
    assert failed.exit_code != 0 and "passphrase is wrong" in failed.output
    out = gristmill(
        other,
        "workspace",
        "import",
        str(backup),
        workspace="moved",
        GRISTMILL_EXPORT_PASSPHRASE="correct horse",
    )
    assert "imported into moved" in out
    secret = other.ok(other.http.get("/w/moved/variables/get_value/f/sync/secret")).json()
    assert secret == "s3cr3t"
    # The same items as the source, secrets aside (their ciphertexts differ by workspace).
    source, moved = tmp_path / "source", tmp_path / "moved"
    gristmill(gm, "sync", "pull", str(source), "--skip-secrets")
    gristmill(other, "sync", "pull", str(moved), "--skip-secrets", workspace="moved")
    assert _tree(moved) == _tree(source)
    result = other.ok(
        other.http.post("/w/moved/jobs/run_wait_result/f/f/sync/greet", json={"name": "x"})
    )
    # The flow (which another test may have edited) answers there as here.
    here = gm.ok(
        gm.http.post(f"/w/{WORKSPACE}/jobs/run_wait_result/f/f/sync/greet", json={"name": "x"})
    )
    assert result.json() == here.json() and result.json().endswith(" X")
    # Imported again: everything already there.
    out = gristmill(
        other,
        "workspace",
        "import",
        str(backup),
        workspace="moved",
        GRISTMILL_EXPORT_PASSPHRASE="correct horse",
    )
    assert "1 item(s) imported" in out  # the secret: sealed again, so never "the same"


def _gunzip(path: Path) -> bytes:
    import gzip

    return gzip.decompress(path.read_bytes())
