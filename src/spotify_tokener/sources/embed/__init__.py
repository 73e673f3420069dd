"""The embed source: the anonymous token Spotify's embed player page carries, no TOTP, no browser."""
