"""Reading what a script needs (imports, //require, //replace) and the lock's text."""

from __future__ import annotations

from pathlib import Path

import pytest
from gristmill.runtimes import ScriptError
from gristmill_go.dependencies import (
    LockFiles,
    go_mod,
    join_lock,
    local_fingerprint,
    local_replacements,
    lock_inputs,
    split_lock,
    with_module,
)
from gristmill_go.runtime import GoRuntime


def test_standard_library_only_needs_no_lock() -> None:
    code = (
        'package inner\n\nimport (\n\t"fmt"\n\t"net/http"\n\tj "encoding/json"\n\t"C"\n)\n\n'
        "// requires nothing: a comment that merely mentions //require.\n"
        "//required reading: a word that starts like a directive\n"
        "func main() {}\n"
    )
    assert lock_inputs(code) is None
    assert GoRuntime().lock_inputs(code) is None


def test_imports_requires_and_replaces_become_sorted_go_mod_lines() -> None:
    code = """package inner

//require github.com/google/uuid v1.6.0
//replace example.com/greet => /srv/go/greet/

import (
	"fmt"
	wmill "github.com/windmill-labs/windmill-go-client"
	_ "github.com/lib/pq"
	. "example.com/greet"
	"rsc.io/quote/v3"
	"github.com/lib/pq"
)

//require rsc.io/quote/v3 v3.1.0
//replace golang.org/x/text v0.3.0 => example.com/text-fork v0.3.1

func main() string { return Hello(fmt.Sprint(wmill.Version, quote.Go())) }
"""
    assert lock_inputs(code) == (
        "require github.com/google/uuid v1.6.0\n"
        "require rsc.io/quote/v3 v3.1.0\n"
        "replace example.com/greet => /srv/go/greet\n"
        "replace golang.org/x/text v0.3.0 => example.com/text-fork v0.3.1\n"
        "// import example.com/greet\n"
        "// import github.com/lib/pq\n"
        "// import github.com/windmill-labs/windmill-go-client\n"
        "// import rsc.io/quote/v3\n"
    )


def test_a_require_alone_is_enough_and_a_repeated_one_counts_once() -> None:
    code = (
        "package inner\n\n//require example.com/tool v1.0.0\n"
        "//require example.com/tool v1.0.0\n\nfunc main() {}\n"
    )
    assert lock_inputs(code) == "require example.com/tool v1.0.0\n"


def test_directives_are_comments_not_strings() -> None:
    code = (
        "package inner\n\nconst doc = `\n//require example.com/not v1.0.0\n`\n\n"
        "func main() string { return doc }\n"
    )
    assert lock_inputs(code) is None


def test_a_directory_with_spaces_is_quoted_in_go_mod() -> None:
    code = 'package inner\n\n//replace example.com/greet => "/srv/my modules/greet"\n\nfunc main() {}\n'
    inputs = lock_inputs(code)
    assert inputs == 'replace example.com/greet => "/srv/my modules/greet"\n'
    assert local_replacements(go_mod("script", "1.22", inputs)) == ["/srv/my modules/greet"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("//require github.com/google/uuid", "malformed //require line"),
        ("//require github.com/google/uuid v1.6.0 extra", "malformed //require line"),
        ("//require", "malformed //require line"),
        ("//require github.com/google/uuid 1.6.0", "`1.6.0` is not a module version"),
        ("//require github.com/google/uuid latest", "`latest` is not a module version"),
        ("//require uuid v1.6.0", "`uuid` is not a module path"),
        ("//replace example.com/greet /srv/greet", "malformed //replace line"),
        ("//replace example.com/greet =>", "malformed //replace line"),
        ("//replace example.com/greet => ../greet", "must be an absolute path"),
        ("//replace example.com/greet => example.com/fork", "malformed //replace line"),
        ("//replace example.com/greet => example.com/fork main", "is not a module version"),
    ],
)
def test_a_malformed_directive_is_refused_with_its_line(line: str, message: str) -> None:
    code = f'package inner\n\nimport "fmt"\n\n{line}\n\nfunc main() {{ fmt.Println() }}\n'
    with pytest.raises(ScriptError) as caught:
        lock_inputs(code)
    assert caught.value.line == 5
    assert message in caught.value.message


def test_contradicting_requires_are_refused() -> None:
    code = (
        "package inner\n\n//require example.com/tool v1.0.0\n"
        "//require example.com/tool v1.2.0\n\nfunc main() {}\n"
    )
    with pytest.raises(ScriptError) as caught:
        lock_inputs(code)
    assert caught.value.line == 4
    assert "contradicts line 3" in caught.value.message


def test_go_mod_of_the_inputs() -> None:
    inputs = (
        "require example.com/a v1.0.0\nreplace example.com/a => /srv/a\n// import example.com/a\n"
    )
    assert go_mod("script", "1.22", inputs) == (
        "module script\n\ngo 1.22\n\n"
        "require example.com/a v1.0.0\nreplace example.com/a => /srv/a\n"
    )
    assert go_mod("script", "1.22", "// import example.com/a\n") == "module script\n\ngo 1.22\n"


def test_the_lock_is_windmills_go_mod_then_go_sum() -> None:
    files = LockFiles("module script\n\ngo 1.22\n", "example.com/a v1.0.0 h1:x=\n")
    lock = join_lock(files)
    assert lock == "module script\n\ngo 1.22\n//go.sum\nexample.com/a v1.0.0 h1:x=\n"
    assert split_lock(lock) == files
    assert split_lock(join_lock(LockFiles("module script", ""))) == LockFiles("module script\n", "")
    assert split_lock("module script\n") == LockFiles("module script\n", "")


def test_local_replacements_of_a_go_mod() -> None:
    text = (
        "module script\n\ngo 1.22\n\n"
        "replace example.com/a => /srv/a // a comment\n"
        "replace example.com/b v1.0.0 => example.com/c v1.1.0\n"
        'replace (\n\texample.com/d => "/srv/with space"\n\texample.com/e => ../rel\n)\n'
    )
    assert local_replacements(text) == ["/srv/a", "/srv/with space"]


def test_the_fingerprint_of_a_directory_follows_its_files(tmp_path: Path) -> None:
    (tmp_path / "a.go").write_text("package a\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("x")
    first = local_fingerprint([str(tmp_path)])
    (tmp_path / ".git" / "HEAD").write_text("changed")
    assert local_fingerprint([str(tmp_path)]) == first
    (tmp_path / "a.go").write_text("package a // edited\n")
    assert local_fingerprint([str(tmp_path)]) != first
    assert local_fingerprint([str(tmp_path / "missing")]) != first


def test_imports_after_a_comment_that_looks_like_a_declaration() -> None:
    code = (
        "package inner\n\n/*\nfunc example() is how main looks\n*/\n\n"
        'import "example.com/greet"\n\nfunc main() { greet.Hello() }\n'
    )
    assert lock_inputs(code) == "// import example.com/greet\n"
    # The same with a line comment, and a long script after the imports.
    code = (
        "package inner\n\n// func main is below\n"
        'import (\n\t"fmt"\n\t"example.com/greet"\n)\n\n'
        + "".join(f"func f{i}() {{ fmt.Println({i}) }}\n" for i in range(50))
        + "func main() { greet.Hello() }\n"
    )
    assert lock_inputs(code) == "// import example.com/greet\n"


def test_a_windmill_lock_gets_the_jobs_module_path() -> None:
    windmill = "module mymod\n\ngo 1.21\n\nrequire rsc.io/quote v1.5.2\n"
    assert with_module(windmill, "script") == (
        "module script\n\ngo 1.21\n\nrequire rsc.io/quote v1.5.2\n"
    )
    assert (
        with_module('module "my/mod" // x\n\ngo 1.22\n', "script") == "module script\n\ngo 1.22\n"
    )
