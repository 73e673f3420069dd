"""The direct source: the web player's token call made without a browser, with what the browser taught."""
