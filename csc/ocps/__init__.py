"""OCPS: the reduction service (summary states now; pipelines with the reduction issue)."""
