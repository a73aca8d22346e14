"""Workers: the claim loop, running one job (environment, logs, heartbeats), executing its
steps as sandboxed processes, dependency environments, and what workers can run."""
