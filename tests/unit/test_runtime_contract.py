"""The runtime registry, ScriptError and the default result-file protocol."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from uuid import uuid4

import pytest
from gristmill.runtimes import (
    RESULT_FILE,
    DuplicateRuntimeError,
    JobContext,
    JobOutcome,
    ProcessExit,
    Recipe,
    Runtime,
    RuntimeRegistry,
    ScriptError,
    Toolchain,
    UnknownRuntimeError,
    error_result,
    read_result_file,
)
from gristmill.runtimes.signature import Signature


class FakeLang:
    """A complete (if useless) runtime: enough to exercise the registry."""

    display_name = "Fake"
    file_extensions = (".fake",)

    def __init__(self, name: str = "fake", aliases: tuple[str, ...] = ()) -> None:
        self.name = name
        self.aliases = aliases

    def parse_signature(self, source: str) -> Signature:
        return Signature()

    def template(self) -> str:
        return ""

    def toolchain(self) -> Toolchain:
        return Toolchain(True, "1")

    def prepare(self, ctx: JobContext) -> Recipe:
        return Recipe(argv=["true"], env={}, cwd=ctx.job_dir)

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        return read_result_file(ctx, exit)


def test_fake_runtime_satisfies_protocol() -> None:
    """The test runtime is a Runtime, so the registry tests below test the registry."""
    assert isinstance(FakeLang(), Runtime)


def test_register_get_resolve_aliases() -> None:
    """A runtime is found by name and by each alias; resolve gives the canonical name."""
    reg = RuntimeRegistry()
    ruby = FakeLang("ruby", ("rb", "ruby3"))
    reg.register(ruby, source="gristmill-ruby 1.0")
    assert reg.get("ruby") is ruby
    assert reg.get("rb") is ruby
    assert reg.get("ruby3") is ruby
    assert reg.resolve("rb") == "ruby"
    assert reg.resolve("ruby") == "ruby"
    assert reg.source("rb") == "gristmill-ruby 1.0"


def test_names_contains_len_iter() -> None:
    """names() is sorted canonical names; ``in`` knows aliases; len counts runtimes."""
    reg = RuntimeRegistry()
    assert len(reg) == 0
    assert reg.names() == []
    b = FakeLang("bash", ("sh",))
    a = FakeLang("awk")
    reg.register(b)
    reg.register(a)
    assert reg.names() == ["awk", "bash"]
    assert len(reg) == 2
    assert "bash" in reg
    assert "sh" in reg
    assert "zsh" not in reg
    assert 3 not in reg
    assert list(reg) == [a, b]


def test_default_source_is_unknown() -> None:
    """Without a source the registry records "unknown"."""
    reg = RuntimeRegistry()
    reg.register(FakeLang())
    assert reg.source("fake") == "unknown"


@pytest.mark.parametrize(
    ("first", "second", "clash"),
    [
        (FakeLang("go"), FakeLang("go"), "go"),
        (FakeLang("go", ("golang",)), FakeLang("golang"), "golang"),
        (FakeLang("go"), FakeLang("gopher", ("go",)), "go"),
        (FakeLang("go", ("g",)), FakeLang("gopher", ("g",)), "g"),
    ],
    ids=["name-name", "name-alias", "alias-name", "alias-alias"],
)
def test_duplicate_names_both_sources(first: FakeLang, second: FakeLang, clash: str) -> None:
    """A name or alias registered twice raises DuplicateRuntimeError naming both sources."""
    reg = RuntimeRegistry()
    reg.register(first, source="plugin-one 1.0")
    with pytest.raises(DuplicateRuntimeError) as info:
        reg.register(second, source="plugin-two 2.0")
    message = str(info.value)
    assert f"'{clash}'" in message
    assert "plugin-one 1.0" in message
    assert "plugin-two 2.0" in message
    # The failed registration left nothing behind.
    assert reg.names() == ["go"]
    assert reg.get(clash) is first


def test_unknown_runtime_lists_available() -> None:
    """Asking for an unknown language lists the languages there are."""
    reg = RuntimeRegistry()
    reg.register(FakeLang("deno"))
    reg.register(FakeLang("bun"))
    with pytest.raises(UnknownRuntimeError) as info:
        reg.get("rust")
    assert info.value.name == "rust"
    assert info.value.available == ["bun", "deno"]
    assert "unknown language 'rust'" in str(info.value)
    assert "available languages: bun, deno" in str(info.value)
    with pytest.raises(UnknownRuntimeError):
        reg.resolve("rust")
    assert isinstance(info.value, LookupError)


def test_unknown_runtime_with_empty_registry_suggests_a_plugin() -> None:
    """With no runtime at all the message says to install a runtime plugin."""
    with pytest.raises(UnknownRuntimeError, match="install a runtime plugin"):
        RuntimeRegistry().get("python3")


class MissingName:
    display_name = "x"
    aliases = ()
    file_extensions = ()


class MissingMethods:
    name = "half"
    display_name = "Half"
    aliases = ()
    file_extensions = ()

    def template(self) -> str:
        return ""


def test_register_object_missing_attributes_names_source() -> None:
    """An object lacking members is a TypeError naming the plugin and what is missing."""
    reg = RuntimeRegistry()
    with pytest.raises(TypeError) as info:
        reg.register(MissingName(), source="gristmill-broken 0.1")  # type: ignore[arg-type]
    assert "gristmill-broken 0.1" in str(info.value)
    assert "missing: name" in str(info.value)
    assert len(reg) == 0


def test_register_object_missing_methods_names_source() -> None:
    """An object with the attributes but not the methods is rejected too."""
    reg = RuntimeRegistry()
    with pytest.raises(TypeError, match=r"gristmill-half 0\.1"):
        reg.register(MissingMethods(), source="gristmill-half 0.1")  # type: ignore[arg-type]
    assert "half" not in reg


def test_script_error_position_in_message() -> None:
    """ScriptError prefixes "line L, column C: " and keeps the parts as attributes."""
    err = ScriptError("unexpected indent", line=3, column=7)
    assert str(err) == "line 3, column 7: unexpected indent"
    assert (err.message, err.line, err.column) == ("unexpected indent", 3, 7)
    assert str(ScriptError("no main", line=2)) == "line 2: no main"
    assert str(ScriptError("no main")) == "no main"
    assert isinstance(err, ValueError)


def test_error_result_shape() -> None:
    """error_result writes Windmill's error object."""
    assert json.loads(error_result("E", "m", "s")) == {
        "error": {"name": "E", "message": "m", "stack": "s"}
    }
    assert json.loads(error_result("E", "m"))["error"]["stack"] == ""


# ------------------------------------------------------------------------- read_result_file


def _ctx(job_dir: Path) -> JobContext:
    return JobContext(
        id=uuid4(),
        workspace_id="main",
        language="fake",
        code="",
        args={},
        job_dir=job_dir,
    )


def test_result_exit_zero_with_file(tmp_path: Path) -> None:
    """Exit 0 with result.json: success with the file's text as is."""
    (tmp_path / RESULT_FILE).write_text('{"a": [1, 2]}', encoding="utf-8")
    assert read_result_file(_ctx(tmp_path), ProcessExit(0)) == JobOutcome(True, '{"a": [1, 2]}')


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_result_exit_zero_without_file_is_null(tmp_path: Path, content: str | None) -> None:
    """Exit 0 and no (or an empty) result.json: success with a null result."""
    if content is not None:
        (tmp_path / RESULT_FILE).write_text(content)
    assert read_result_file(_ctx(tmp_path), ProcessExit(0)) == JobOutcome(True, "null")


def test_result_exit_one_with_error_object(tmp_path: Path) -> None:
    """Exit 1 with an error object in result.json: failure with that object."""
    text = error_result("ValueError", "bad", "Traceback ...")
    (tmp_path / RESULT_FILE).write_text(text)
    outcome = read_result_file(_ctx(tmp_path), ProcessExit(1, "x", "output"))
    assert outcome == JobOutcome(False, text)


def test_result_exit_one_without_file(tmp_path: Path) -> None:
    """Exit 1 without a file: an ExecutionErr with the exit code and the last output."""
    exit = ProcessExit(1, last_line="boom", output_tail="starting\nboom\n")
    outcome = read_result_file(_ctx(tmp_path), exit)
    assert outcome.success is False
    error = json.loads(outcome.result_json)["error"]
    assert error["name"] == "ExecutionErr"
    assert "exited with code 1" in error["message"]
    assert error["message"].endswith("last output:\nstarting\nboom")


def test_a_result_file_that_is_not_a_file(tmp_path: Path) -> None:
    """A job that made result.json a directory: a clear ResultError when it exited 0, and its
    own exit explained (not a crash of the reader) when it failed."""
    (tmp_path / RESULT_FILE).mkdir()
    ok = json.loads(read_result_file(_ctx(tmp_path), ProcessExit(0)).result_json)["error"]
    assert ok["name"] == "ResultError"
    assert f"its {RESULT_FILE} cannot be read: Is a directory" in ok["message"]
    failed = read_result_file(_ctx(tmp_path), ProcessExit(3, "", "boom"))
    message = json.loads(failed.result_json)["error"]["message"]
    assert message == "the process exited with code 3; last output:\nboom"


def test_result_exit_code_without_output(tmp_path: Path) -> None:
    """A process that printed nothing says so."""
    outcome = read_result_file(_ctx(tmp_path), ProcessExit(2))
    message = json.loads(outcome.result_json)["error"]["message"]
    assert message == "the process exited with code 2 and printed nothing"


def test_result_killed_by_signal(tmp_path: Path) -> None:
    """A negative exit code reports the signal that killed the process."""
    outcome = read_result_file(_ctx(tmp_path), ProcessExit(-signal.SIGKILL, "", "partial"))
    assert outcome.success is False
    message = json.loads(outcome.result_json)["error"]["message"]
    assert f"killed by signal {int(signal.SIGKILL)}" in message
    assert "partial" in message


@pytest.mark.parametrize("content", ["{not json", '{"result": 1}', '"just a string"', "[1]"])
def test_result_exit_one_with_invalid_or_non_error_file(tmp_path: Path, content: str) -> None:
    """Exit 1 with a file that is not an error object: an ExecutionErr, never the file."""
    (tmp_path / RESULT_FILE).write_text(content)
    outcome = read_result_file(_ctx(tmp_path), ProcessExit(1, "", "Traceback: oops"))
    assert outcome.success is False
    error = json.loads(outcome.result_json)["error"]
    assert error["name"] == "ExecutionErr"
    assert "exited with code 1" in error["message"]
    assert "Traceback: oops" in error["message"]
