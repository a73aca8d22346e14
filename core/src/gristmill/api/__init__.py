"""The REST API (FastAPI): Windmill's paths under ``/api``, thin routes over the domain packages."""
