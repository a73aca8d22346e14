"""The Go runtime passes the conformance kit every runtime passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from gristmill.runtimes import Runtime
from gristmill.testing.contract import RuntimeContract
from gristmill_go.runtime import GoRuntime


class TestGoContract(RuntimeContract):
    runtime_factory = GoRuntime
    mangle_pieces = (*"()[]{}:,.=*\"'`\n\t ", "func ", "main", "struct", "package ", "...", "é")
    fixtures = Path(__file__).parent / "fixtures" / "signatures"
    min_fixtures = 8
    hello_script = (
        "package inner\n\n"
        "func main(name string, count int) (interface{}, error) {\n"
        '\treturn map[string]interface{}{"name": name, "count": count}, nil\n'
        "}\n"
    )
    hello_args = {"name": "Ada", "count": 3}
    hello_result = {"name": "Ada", "count": 3}
    failing_script = (
        'package inner\n\nimport "errors"\n\n'
        'func main() (interface{}, error) {\n\treturn nil, errors.New("boom")\n}\n'
    )
    failing_message = "boom"
    bad_script = "package inner\n\nfunc main(x int {\n\treturn\n}\n"
    dependency_script = (
        'package inner\n\nimport "github.com/google/uuid"\n\n'
        "//require github.com/google/uuid v1.6.0\n\n"
        "func main() string {\n\treturn uuid.NewString()\n}\n"
    )

    @pytest.fixture(autouse=True)
    def _shared_build_cache(self, go_build_cache: Path) -> None:
        self.build_cache = go_build_cache

    def make_runtime(self) -> Runtime:
        # Each job of the kit gets a fresh runtime cache; the Go build cache is shared so
        # that the standard library compiles once per session.
        return GoRuntime(build_cache=self.build_cache)
