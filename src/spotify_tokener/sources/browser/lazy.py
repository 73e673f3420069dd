"""The browser source as the service holds it: Playwright, an optional extra that once imported stays
in the process's memory, is imported at the browser's first attempt, never while others serve."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from spotify_tokener.core.ports import Pupil
from spotify_tokener.domain.errors import BrowserMissing
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.token import Token
from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.chromium import missing

if TYPE_CHECKING:
    from spotify_tokener.sources.browser.manager import BrowserManager
    from spotify_tokener.sources.browser.source import BrowserSource

NO_PLAYWRIGHT = "Playwright is not installed (pip install 'spotify-tokener[browser]')"


def unavailable(settings: Settings) -> str | None:
    """Why the browser source cannot run at all, said at start without importing or launching anything."""
    try:
        playwright = importlib.util.find_spec("playwright")
    except (ImportError, ValueError):  # a broken install, or one a test has hidden
        playwright = None
    return NO_PLAYWRIGHT if playwright is None else missing(settings.browser_path)


class LazyBrowser:
    """An :class:`~spotify_tokener.core.ports.ProxiedSource`, and the browser as ``/health`` shows it."""

    def __init__(self, settings: Settings, pupil: Pupil | None, lent: BrowserManager | None = None) -> None:
        """``lent``: a browser that someone else runs and closes (tests); it is always available."""
        self._settings = settings
        self._pupil = pupil
        self._manager = lent
        self._owned = lent is None
        self._source: BrowserSource | None = None
        self.unavailable = unavailable(settings) if lent is None else None

    @property
    def running(self) -> bool:
        return self._manager is not None and self._manager.running

    @property
    def launches(self) -> int:
        return self._manager.launches if self._manager is not None else 0

    @property
    def executable(self) -> Path | None:
        return self._manager.executable if self._manager is not None else None

    @property
    def version(self) -> str | None:
        return self._manager.version if self._manager is not None else None

    async def attempt(self, sp_dc: str | None = None, proxy: Proxy | None = None) -> Token:
        if self.unavailable is not None:
            raise BrowserMissing(f"the browser source is unavailable: {self.unavailable}")
        return await self._loaded().attempt(sp_dc, proxy)

    async def close(self) -> None:
        if self._source is not None:
            await self._source.close()  # first: its teaching holds a context
        if self._manager is not None and self._owned:
            await self._manager.close()

    def _loaded(self) -> BrowserSource:
        if self._source is None:
            from spotify_tokener.sources.browser.manager import BrowserManager  # noqa: PLC0415
            from spotify_tokener.sources.browser.source import BrowserSource  # noqa: PLC0415

            if self._manager is None:
                self._manager = BrowserManager(self._settings)
            self._source = BrowserSource(self._settings, self._manager, pupil=self._pupil)
        return self._source
