"""Request and response models, one module per resource: every route declares the model of
its answer, so ``/api/openapi.json`` describes every 2xx body (the web UI's client is
generated from it)."""
