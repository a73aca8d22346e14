"""Scripts: versions (each a hash), paths, deployment (dependency jobs and locks)."""
