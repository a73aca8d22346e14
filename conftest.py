pytest_plugins = ["gristmill.testing.pytest_plugin"]
