"""The browser source: a headless Chromium opens the web player and the token call is caught."""
