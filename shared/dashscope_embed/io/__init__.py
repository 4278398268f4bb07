"""Real-time streaming to disk: chunked calls, per-row failure isolation and the file sinks."""
