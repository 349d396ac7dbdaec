"""The videojobs REST API: FastAPI routes over a pluggable job backend (local or Kubernetes)."""
