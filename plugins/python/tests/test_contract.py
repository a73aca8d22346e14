"""The Python runtime passes the conformance kit every runtime passes."""

from __future__ import annotations

from pathlib import Path

from gristmill.testing.contract import RuntimeContract
from gristmill_python.runtime import PythonRuntime


class TestPythonContract(RuntimeContract):
    runtime_factory = PythonRuntime
    mangle_pieces = (*"()[]{}:,.=*\"'#\n\t ", "def ", "main", "class ", "->", "|", '"""', "é")
    fixtures = Path(__file__).parent / "fixtures" / "signatures"
    min_fixtures = 12
    hello_script = (
        "def main(name: str, count: int = 2):\n    return {'name': name, 'count': count}\n"
    )
    hello_args = {"name": "Ada", "count": 3}
    hello_result = {"name": "Ada", "count": 3}
    failing_script = "def main():\n    raise RuntimeError('boom')\n"
    failing_message = "boom"
    bad_script = "def main(x:\n    return x\n"
    dependency_script = "import requests\nimport yaml\n\ndef main():\n    return 1\n"
