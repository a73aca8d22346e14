"""The Bash runtime passes the conformance kit every runtime passes."""

from __future__ import annotations

from pathlib import Path

from gristmill.testing.contract import RuntimeContract
from gristmill_bash.runtime import BashRuntime


class TestBashContract(RuntimeContract):
    runtime_factory = BashRuntime
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
