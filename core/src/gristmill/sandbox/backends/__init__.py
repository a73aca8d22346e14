"""Sandbox backends: each renders a recipe as the process to start (``bwrap``, the default on
Linux; ``nsjail``; ``none``, for development)."""
