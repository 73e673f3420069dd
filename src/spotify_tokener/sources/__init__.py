"""Where tokens come from: each source implements ``core.ports.TokenSource``."""
