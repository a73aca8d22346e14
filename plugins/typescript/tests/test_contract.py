"""The Bun and Deno runtimes pass the conformance kit every runtime passes."""

from __future__ import annotations

from pathlib import Path

from gristmill.testing.contract import RuntimeContract
from gristmill_typescript.bun import BunRuntime
from gristmill_typescript.deno import DenoRuntime

FIXTURES = Path(__file__).parent / "fixtures" / "signatures"


class _TypeScriptContract(RuntimeContract):
    fixtures = FIXTURES
    min_fixtures = 14
    hello_script = (
        "export async function main(name: string, count: number = 2) {\n"
        "  return { name, count };\n"
        "}\n"
    )
    hello_args = {"name": "Ada", "count": 3}
    hello_result = {"name": "Ada", "count": 3}
    failing_script = 'export function main() {\n  throw new Error("boom");\n}\n'
    failing_message = "boom"
    bad_script = "export function main(x: string {\n  return x;\n}\n"
    mangle_pieces = (*"()[]{}<>:;,.=|?\"'`\n\t ", "export ", "function ", "main", "=>", "${", "é")


class TestBunContract(_TypeScriptContract):
    runtime_factory = BunRuntime
    dependency_script = (
        'import * as cowsay from "cowsay@1.5.0";\n'
        "export function main(text: string) {\n  return cowsay.say({ text });\n}\n"
    )


class TestDenoContract(_TypeScriptContract):
    runtime_factory = DenoRuntime
    dependency_script = (
        'import * as cowsay from "npm:cowsay@1.5.0";\n'
        "export function main(text: string) {\n  return cowsay.say({ text });\n}\n"
    )
