"""The browser source as the service holds it: Playwright, an optional extra that once imported stays
in the process's memory, is imported at the browser's first attempt, never while others serve."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spotify_tokener.core.ports import Pupil
from spotify_tokener.domain.errors import BrowserMissing
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.token import Token
from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.manager import BrowserManager

if TYPE_CHECKING:
    from spotify_tokener.sources.browser.source import BrowserSource


class LazyBrowser:
    """An :class:`~spotify_tokener.core.ports.ProxiedSource`."""

    def __init__(self, settings: Settings, manager: BrowserManager, pupil: Pupil | None) -> None:
        self._settings = settings
        self._manager = manager
        self._pupil = pupil
        self._source: BrowserSource | None = None

    async def attempt(self, sp_dc: str | None = None, proxy: Proxy | None = None) -> Token:
        if self._manager.unavailable is not None:
            raise BrowserMissing(f"the browser source is unavailable: {self._manager.unavailable}")
        if self._source is None:
            from spotify_tokener.sources.browser.source import BrowserSource  # noqa: PLC0415

            self._source = BrowserSource(self._settings, self._manager, self._pupil)
        return await self._source.attempt(sp_dc, proxy)

    @property
    def teaching(self) -> bool:
        """Whether a teaching runs behind an answer already: another would only load the page again."""
        return self._source is not None and self._source.teaching

    async def close(self) -> None:
        """Before the browser's: its teaching holds a context."""
        if self._source is not None:
            await self._source.close()
