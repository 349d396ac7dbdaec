"""Job backends: where jobs live and run (local SQLite + worker processes, or Kubernetes VideoJobs)."""
