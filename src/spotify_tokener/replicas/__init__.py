"""Several replicas sharing one token: the Redis coordinator and the records it shares."""
