"""Pure rules: what a token is, when it may be served, how long to wait, what can go wrong. No I/O
and no framework imports (a contract in pyproject.toml checks it), so each rule is unit-tested alone."""
