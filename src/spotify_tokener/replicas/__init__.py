"""Several replicas sharing one token through Redis."""
