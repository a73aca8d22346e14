"""Running Gristmill: the parts one process runs (``MODE``), starting and stopping them, the CLI."""
