"""The Bash runtime passes the conformance kit every runtime passes."""

from __future__ import annotations

from pathlib import Path

from gristmill.testing.contract import RuntimeContract
from gristmill_bash.runtime import BashRuntime


class TestBashContract(RuntimeContract):
    runtime_factory = BashRuntime
    mangle_pieces = (
        *"(){}[]\"'`$;|&<>#\n\t ",
        "if ",
        "fi",
        "do",
        "done",
        "$(",
        "${",
        "<<EOF\n",
        "é",
    )
    mangle_position_required = True

    def make_parsing_runtime(self) -> BashRuntime:
        # Without Bash, so that no process is started per parse: tree-sitter alone decides.
        runtime = BashRuntime(bash="/nonexistent/bash")
        assert not runtime.toolchain().available
        return runtime

    fixtures = Path(__file__).parent / "fixtures" / "signatures"
    min_fixtures = 8
    hello_script = (
        'name="$1"\ncount="${2:-2}"\n'
        'printf \'{"name": "%s", "count": %d}\' "$name" "$count" > result.json\n'
    )
    hello_args = {"name": "Ada", "count": "3"}
    hello_result = {"name": "Ada", "count": 3}
    failing_script = 'echo "about to fail"\necho boom >&2\nexit 3\n'
    failing_message = "boom"
    bad_script = 'name="$1"\nif [ -n "$name" ]; then\n  echo "$name"\n'
