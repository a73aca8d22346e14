"""Requirements inferred from a script's imports and annotations (``lock_inputs``)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from gristmill.runtimes import DependencyLocking, ScriptError
from gristmill_python.mapping import distribution_for
from gristmill_python.requirements import lock_inputs
from gristmill_python.runtime import PythonRuntime

FIXTURES = Path(__file__).parent / "fixtures" / "signatures"


def reqs(source: str) -> list[str]:
    """The requirements of ``source`` as a list (empty for ``None``)."""
    text = lock_inputs(source)
    if text is None:
        return []
    assert text.endswith("\n")
    return text.splitlines()


def test_runtime_implements_dependency_locking() -> None:
    """PythonRuntime is a DependencyLocking runtime and delegates to lock_inputs."""
    runtime = PythonRuntime()
    assert isinstance(runtime, DependencyLocking)
    assert runtime.lock_inputs("import requests\n") == "requests\n"


@pytest.mark.parametrize(
    "source",
    [
        "",
        "def main():\n    return 1\n",
        "import os\nimport sys, json\nfrom collections import abc\n",
        "from __future__ import annotations\nimport typing\n",
        "import xml.etree.ElementTree as ET\nfrom urllib.parse import quote\n",
        "import asyncio.subprocess\nfrom concurrent.futures import ThreadPoolExecutor\n",
        "import zoneinfo, tomllib, sqlite3, _thread\n",
    ],
)
def test_standard_library_only_needs_nothing(source: str) -> None:
    """The standard library and __future__ need nothing: None, not an empty text."""
    assert lock_inputs(source) is None


def test_modules_removed_from_newer_pythons_count_as_stdlib() -> None:
    """cgi, imp, distutils... were the standard library: no PyPI package of that name."""
    assert lock_inputs("import cgi\nimport imp\nfrom distutils import util\n") is None


def test_plain_imports() -> None:
    """import x, import x.y, from x.y import z all need the distribution of x."""
    source = (
        "import requests\n"
        "import numpy as np\n"
        "import pandas.io.sql\n"
        "from httpx import AsyncClient\n"
        "from pydantic.fields import Field as F\n"
    )
    assert reqs(source) == ["httpx", "numpy", "pandas", "pydantic", "requests"]


def test_several_names_in_one_import() -> None:
    assert reqs("import requests, numpy as np, os\n") == ["numpy", "requests"]


def test_parenthesized_multiline_from_import() -> None:
    source = "from boto3.session import (\n    Session,\n    # a comment\n    Config,\n)\n"
    assert reqs(source) == ["boto3"]


@pytest.mark.parametrize(
    ("module", "distribution"),
    [
        ("yaml", "PyYAML"),
        ("PIL.Image", "pillow"),
        ("sklearn.linear_model", "scikit-learn"),
        ("cv2", "opencv-python"),
        ("bs4", "beautifulsoup4"),
        ("dateutil.parser", "python-dateutil"),
        ("dotenv", "python-dotenv"),
        ("jwt", "PyJWT"),
        ("psycopg2.extras", "psycopg2-binary"),
        ("psycopg", "psycopg[binary]"),
        ("attr", "attrs"),
        ("Crypto.Cipher", "pycryptodome"),
        ("magic", "python-magic"),
        ("docx", "python-docx"),
        ("git", "GitPython"),
        ("serial", "pyserial"),
        ("MySQLdb", "mysqlclient"),
        ("OpenSSL.crypto", "pyOpenSSL"),
        ("wmill", "wmill"),
        ("googleapiclient.discovery", "google-api-python-client"),
        ("google.cloud.bigquery", "google-cloud-bigquery"),
        ("google.cloud.bigquery_storage", "google-cloud-bigquery-storage"),
        ("google.cloud.storage.blob", "google-cloud-storage"),
        ("google.protobuf.json_format", "protobuf"),
        ("google.oauth2.service_account", "google-auth"),
        ("google.auth.transport.requests", "google-auth"),
        ("google.genai", "google-genai"),
        ("azure.storage.blob", "azure-storage-blob"),
        ("azure.identity", "azure-identity"),
        ("azure.keyvault.secrets", "azure-keyvault-secrets"),
        ("ruamel.yaml", "ruamel.yaml"),
        ("snowflake.connector", "snowflake-connector-python"),
        ("slack_sdk.web", "slack-sdk"),
        ("typing_extensions", "typing-extensions"),
        ("requests", "requests"),
    ],
)
def test_module_to_distribution(module: str, distribution: str) -> None:
    """Known mismatches come from the table; otherwise the root module with _ as -."""
    assert distribution_for(module) == distribution


@pytest.mark.parametrize("module", ["google", "google.cloud", "azure", "_private", "café"])
def test_modules_without_a_distribution(module: str) -> None:
    """A bare namespace or a name that is no valid distribution name gives nothing."""
    assert distribution_for(module) is None


def test_attr_and_attrs_are_one_distribution() -> None:
    assert reqs("import attr\nimport attrs\n") == ["attrs"]


def test_from_namespace_import_names_the_subpackages() -> None:
    """from google.cloud import bigquery, storage: each name is a distribution."""
    source = "from google.cloud import bigquery, storage as gcs\nfrom google.cloud import *\n"
    assert reqs(source) == ["google-cloud-bigquery", "google-cloud-storage"]


def test_nested_imports_count() -> None:
    """Imports in functions, try blocks, conditionals and classes count, as in Windmill."""
    source = (
        "import os\n"
        "try:\n"
        "    import ujson as json\n"
        "except ImportError:\n"
        "    import json\n"
        "if os.environ.get('X'):\n"
        "    import numpy\n"
        "class A:\n"
        "    from toolz import curry\n"
        "def main():\n"
        "    import yaml\n"
        "    def inner():\n"
        "        from PIL import Image\n"
        "    return 1\n"
    )
    assert reqs(source) == ["numpy", "pillow", "PyYAML", "toolz", "ujson"]


def test_relative_and_workspace_script_imports_need_nothing() -> None:
    source = (
        "from . import helpers\n"
        "from .utils import x\n"
        "from ..pkg.mod import y\n"
        "from f.folder.script import z\n"
        "import u.admin.lib\n"
        "from u.admin import other\n"
    )
    assert lock_inputs(source) is None


def test_output_is_sorted_case_insensitively_and_deduplicated() -> None:
    source = "import yaml\nimport requests\nimport yaml.loader\nfrom requests import get\n"
    assert lock_inputs(source) == "PyYAML\nrequests\n"


def test_deterministic_whatever_the_import_order() -> None:
    a = "import requests\nimport yaml\nimport numpy\n"
    b = "import numpy\nimport yaml\nimport requests\n"
    assert lock_inputs(a) == lock_inputs(b) == "numpy\nPyYAML\nrequests\n"


def test_imports_in_strings_and_comments_do_not_count() -> None:
    source = (
        '"""Usage:\n\nimport requests\n"""\n'
        "# import numpy\n"
        "x = 'from pandas import DataFrame'\n"
        "import os\n"
    )
    assert lock_inputs(source) is None


def test_bom_and_crlf() -> None:
    assert reqs("\ufeffimport requests\r\nimport os\r\n") == ["requests"]


# --- annotations ---------------------------------------------------------------------------


def test_requirements_block_replaces_inference() -> None:
    source = (
        "# requirements:\n"
        "#requests==2.31.0\n"
        "# pandas>=2,<3\n"
        "#   PyYAML  # comment after a requirement\n"
        "\n"
        "import numpy\n"
        "import requests\n"
    )
    assert reqs(source) == ["pandas<3,>=2", "PyYAML", "requests==2.31.0"]


def test_requirements_block_ends_at_an_empty_comment_or_code() -> None:
    source = "# requirements:\n# requests\n#\n# this is prose, not a requirement\nimport os\n"
    assert reqs(source) == ["requests"]
    assert reqs("# requirements:\n# requests\nimport os\n# numpy\n") == ["requests"]


def test_empty_requirements_block_means_nothing_needed() -> None:
    """An empty block still replaces inference: the author said nothing is needed."""
    assert lock_inputs("# requirements:\nimport requests\n") is None


def test_extra_requirements_add_to_inference() -> None:
    source = "# extra_requirements:\n# openpyxl\n# pyarrow>=14\n\nimport pandas\nimport os\n"
    assert reqs(source) == ["openpyxl", "pandas", "pyarrow>=14"]


def test_extra_requirement_replaces_the_bare_inferred_name() -> None:
    source = "#extra_requirements:\n#requests==2.31.0\nimport requests\nimport yaml\n"
    assert reqs(source) == ["PyYAML", "requests==2.31.0"]


def test_annotations_inside_a_docstring_do_not_count() -> None:
    source = '"""\n# requirements:\n# requests\n"""\nimport numpy\n'
    assert reqs(source) == ["numpy"]


def test_pep723_block_replaces_inference() -> None:
    source = (
        "# /// script\n"
        '# requires-python = ">=3.11"\n'
        "# dependencies = [\n"
        '#   "requests<3",\n'
        '#   "rich",\n'
        "# ]\n"
        "# ///\n"
        "import numpy\n"
        "import requests\n"
    )
    assert reqs(source) == ["requests<3", "rich"]


def test_pep723_block_without_dependencies_keeps_inference() -> None:
    source = '# /// script\n# requires-python = ">=3.11"\n# ///\nimport requests\n'
    assert reqs(source) == ["requests"]


def test_pep723_empty_dependencies_means_nothing_needed() -> None:
    assert lock_inputs("# /// script\n# dependencies = []\n# ///\nimport requests\n") is None


def test_pin_on_an_import_line() -> None:
    source = (
        "import pandas as pd  # pin: pandas==2.2.2\n"
        "import cv2  # pin: opencv-python-headless>=4\n"
        "import numpy\n"
    )
    assert reqs(source) == ["numpy", "opencv-python-headless>=4", "pandas==2.2.2"]


def test_several_pins_and_multiline_imports() -> None:
    source = (
        "from google.cloud import (  # pin: google-cloud-storage==2.18.0\n"
        "    storage,\n"
        ")\n"
        "import yaml  # pin: PyYAML==6.0.1 # pin: types-PyYAML\n"
    )
    assert reqs(source) == ["google-cloud-storage==2.18.0", "PyYAML==6.0.1", "types-PyYAML"]


def test_pin_beats_inference_of_the_same_distribution_elsewhere() -> None:
    source = "import requests  # pin: requests==2.31.0\nfrom requests import adapters\n"
    assert reqs(source) == ["requests==2.31.0"]


def test_repin_wins_over_other_requirements() -> None:
    source = (
        "# extra_requirements:\n"
        "# numpy<2\n"
        "\n"
        "import numpy  # repin: numpy==2.1.0\n"
        "import pandas  # pin: pandas==2.2.2\n"
    )
    assert reqs(source) == ["numpy==2.1.0", "pandas==2.2.2"]


def test_pin_on_another_line_is_ignored() -> None:
    assert reqs("x = 1  # pin: numpy==1\nimport requests\n") == ["requests"]


def test_requirement_forms_are_normalized() -> None:
    """Extras, markers and spacing: one canonical spelling, so equal inputs key alike."""
    a = "# requirements:\n# requests[socks, security] >= 2\n# pywin32 ; sys_platform == 'win32'\n"
    b = '# requirements:\n#pywin32; sys_platform=="win32"\n#requests[security,socks]>=2\n'
    assert lock_inputs(a) == lock_inputs(b)
    assert reqs(a) == ['pywin32; sys_platform == "win32"', "requests[security,socks]>=2"]


# --- malformed annotations -----------------------------------------------------------------


def error_of(source: str) -> ScriptError:
    with pytest.raises(ScriptError) as info:
        lock_inputs(source)
    return info.value


def test_invalid_requirement_in_block_names_its_line() -> None:
    error = error_of("import os\n# requirements:\n# requests\n# requests>=\n")
    assert error.line == 4
    assert "requests>=" in error.message


def test_invalid_extra_requirement_names_its_line() -> None:
    error = error_of("# extra_requirements:\n# ok-package\n# not a requirement!\nimport x\n")
    assert error.line == 3


def test_pip_options_are_refused() -> None:
    error = error_of("# requirements:\n# --index-url https://example.com/simple\n")
    assert error.line == 2
    assert "PIP_INDEX_URL" in error.message


def test_text_after_the_block_header_is_refused() -> None:
    error = error_of("import os\n# requirements: requests pandas\n")
    assert error.line == 2
    assert "own" in error.message


def test_invalid_toml_in_pep723_block_names_its_line() -> None:
    source = "import os\n# /// script\n# dependencies = [\n#   'requests',\n#   oops\n# ]\n# ///\n"
    error = error_of(source)
    assert error.line == 5
    assert "TOML" in error.message


def test_pep723_dependencies_of_the_wrong_type() -> None:
    error = error_of('# /// script\n# dependencies = "requests"\n# ///\n')
    assert error.line == 1
    assert "list of strings" in error.message


def test_invalid_pep723_dependency_names_its_line() -> None:
    source = '# /// script\n# dependencies = [\n#   "requests",\n#   "bad name!",\n# ]\n# ///\n'
    assert error_of(source).line == 4


def test_unclosed_pep723_block() -> None:
    error = error_of('import os\n# /// script\n# dependencies = ["requests"]\n')
    assert error.line == 2
    assert "never closed" in error.message


def test_two_pep723_script_blocks() -> None:
    block = '# /// script\n# dependencies = ["requests"]\n# ///\n'
    assert error_of(block + "\n" + block).line == 5


def test_pep723_and_requirements_block_together() -> None:
    source = '# /// script\n# dependencies = ["requests"]\n# ///\n# requirements:\n# numpy\n'
    error = error_of(source)
    assert error.line == 4


def test_invalid_pin() -> None:
    error = error_of("import os\nimport numpy  # pin: numpy=1\n")
    assert error.line == 2
    assert error_of("import numpy  # pin:\n").line == 1


# --- robustness and speed ------------------------------------------------------------------


def test_every_fixture_script_is_accepted() -> None:
    """Scripts parse_signature reads (and those it refuses) never crash lock_inputs."""
    scripts = sorted(FIXTURES.glob("*.py"))
    assert scripts
    for path in scripts:
        result = lock_inputs(path.read_text(encoding="utf-8"))
        assert result is None or result.endswith("\n")


@pytest.mark.parametrize(
    "source",
    [
        "import\n",
        "from import x\n",
        "from x import\n",
        "import (\n",
        "from . import\n",
        "import a.\n",
        "def main(:\n    import requests\n",
        "import requests as\n",
        "\x00import numpy\n",
        "import numpy\n" * 3 + "\ud800\n",
    ],
)
def test_broken_scripts_do_not_crash(source: str) -> None:
    """Syntax errors are parse_signature's to report; lock_inputs does its best."""
    result = lock_inputs(source)
    assert result is None or result.endswith("\n")


def test_mangled_scripts_give_requirements_or_a_positioned_error() -> None:
    """Random damage to real scripts and annotations: a result, or a ScriptError with its
    line, never another exception (the API calls this on every save)."""
    pieces = [
        *"()[]{}:,.=*\"'#\n\t ",
        "import ",
        "from ",
        " . ",
        "# pin: ",
        "# repin: x",
        "# requirements:\n",
        "# extra_requirements:\n#",
        "# /// script\n",
        "# ///\n",
        "\r\n",
        "\ufeff",
        "é",
    ]
    scripts = [p.read_text(encoding="utf-8") for p in sorted(FIXTURES.glob("*.py"))]
    scripts.append(
        "# extra_requirements:\n# rich\nimport yaml  # pin: PyYAML\n"
        '# /// script\n# dependencies = ["requests"]\n# ///\n'
    )
    rng = random.Random(723)
    for _ in range(2000):
        source = rng.choice(scripts)
        for _ in range(rng.randint(1, 5)):
            at = rng.randint(0, len(source))
            source = source[:at] + rng.choice(pieces) + source[at:]
        try:
            result = lock_inputs(source)
        except ScriptError as exc:
            assert exc.line is not None, (exc, source)
        else:
            assert result is None or result.endswith("\n"), source


def test_fast_on_a_typical_script() -> None:
    """Well under 2 ms for a script of ~150 lines with a dozen imports (uncached)."""
    header = (
        "import os\nimport json\nimport requests\nimport yaml\nfrom datetime import datetime\n"
        "from google.cloud import bigquery\nimport pandas as pd\n"
    )
    body = "".join(f"def helper_{i}(x):\n    return x * {i}\n\n" for i in range(45))
    source = header + body + "def main(x: int = 1):\n    import numpy\n    return x\n"
    lock_inputs(source)  # warm up
    rounds = 200
    # This thread's CPU time, not the wall clock: the suite runs on two pytest-xdist workers
    # (and the machine may be busier still), so the wall clock also counts the time this
    # thread waited for a core.
    start = time.thread_time()
    for i in range(rounds):
        lock_inputs(source + f"# {i}\n")
    per_call = (time.thread_time() - start) / rounds
    assert per_call < 0.002, f"{per_call * 1000:.2f} ms per call"


def test_thread_safe() -> None:
    """Concurrent calls (the API's threads) give the same answers."""
    sources = [f"import requests\nimport yaml\nx = {i}\n" for i in range(400)]
    results: list[str | None] = []
    errors: list[BaseException] = []

    def work(chunk: list[str]) -> None:
        try:
            results.extend(lock_inputs(s) for s in chunk)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(sources[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == ["PyYAML\nrequests\n"] * len(sources)
