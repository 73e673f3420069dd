"""The suite's order, measured: the longest test files first, by what each took in a whole run.

``make test`` hands whole files to its workers in the order collected (``--dist loadfile``), and a
long file handed out last keeps one worker busy after the others are done. A whole run that passes
(``make test``: every file under ``testpaths``, none deselected) measures each file (its tests'
set-up, call and tear-down, which one worker runs in a row) and rewrites ``durations.json`` when a
file came or went or took a much larger or smaller share of the run than it says: an order that
changed, not noise nor a busier machine. The file is committed, so a fresh clone starts in a good
order. A file it does not name yet goes first: it may be long.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
NOISE_S = 5.0
"""From one run to the next on a busy machine, a file's time varies by this much, or up to twofold."""

_measured: defaultdict[str, float] = defaultdict(float)  # seconds each file's tests took, this run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    known = _recorded()
    unknown = max(known.values(), default=0.0)
    items.sort(key=lambda item: known.get(_file(item.nodeid), unknown), reverse=True)  # stable


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _measured[_file(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus != 0 or not _whole(session.config):
        return
    known = _recorded()
    load = sum(_measured.values()) / max(sum(known.values()), 1.0)  # a busier machine slows them all
    if known.keys() != _measured.keys() or any(
        _moved(before, _measured[name] / load) for name, before in known.items()
    ):
        ranked = sorted(_measured.items(), key=lambda pair: pair[1], reverse=True)
        DURATIONS.write_text(json.dumps({name: round(s, 1) for name, s in ranked}, indent=1) + "\n")


def _moved(before: float, now: float) -> bool:
    return abs(now - before) > NOISE_S and not before / 2 <= now <= before * 2


def _whole(config: pytest.Config) -> bool:
    """Every test ran, and this is the process that saw them all (not one of xdist's workers)."""
    option = config.option
    last_failed = getattr(option, "lf", False)  # absent with -p no:cacheprovider
    narrowed = option.keyword or option.markexpr or last_failed or option.deselect or option.collectonly
    return (
        config.args_source is pytest.Config.ArgsSource.TESTPATHS
        and not narrowed
        and not hasattr(config, "workerinput")
    )


def _recorded() -> dict[str, float]:
    if not DURATIONS.exists():
        return {}
    recorded: dict[str, float] = json.loads(DURATIONS.read_text())
    return recorded


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]
