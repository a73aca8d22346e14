import os

pytest_plugins = ["gristmill.testing.pytest_plugin"]

# The example Perl plugin (tests/fixtures/gristmill-perl) offers its runtime only where this
# is set: to the test session and every process it starts, not to `gristmill up` run by hand
# (see docs/plugins.md). The e2e tests' processes get a clean environment without it.
os.environ["GRISTMILL_EXAMPLE_PERL"] = "1"
