"""The Docker files keep the promises the README makes about them.

Docker publishes a port on every address unless told otherwise, past the host's firewall, and this
service hands a token to whoever asks: no compose file may publish the service, or the password-less
Redis beside it, beyond loopback. (The files' syntax against the Compose schema and the Dockerfile's
lint are `make docker-lint`'s job; neither runs offline from a clean checkout.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from spotify_tokener.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = sorted(ROOT.glob("docker-compose*.yml"))
LOOPBACK = {"127.0.0.1", "::1"}


def services(path: Path) -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(path.read_text())
    found: dict[str, dict[str, Any]] = document["services"]
    return found


def host_ip(port: str | int | dict[str, Any]) -> str | None:
    """The address a `ports:` entry publishes on; None when it names none (that is, every address)."""
    if isinstance(port, dict):
        return port.get("host_ip")
    text = str(port)
    if text.startswith("["):  # "[::1]:3000:3000"
        return text[1 : text.index("]")]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else None


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """Compose's two spellings of `environment:`; a bare name (passed through from the shell) is None."""
    raw = service.get("environment", {})
    if isinstance(raw, dict):
        return {name: None if value is None else str(value) for name, value in raw.items()}
    pairs = (entry.split("=", 1) for entry in raw)
    return {pair[0]: pair[1] if len(pair) == 2 else None for pair in pairs}


def test_both_compose_files_are_there() -> None:
    assert {path.name for path in COMPOSE_FILES} == {"docker-compose.yml", "docker-compose.replicas.yml"}


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.name)
def test_nothing_is_published_beyond_loopback(path: Path) -> None:
    for name, service in services(path).items():
        for port in service.get("ports", []):
            assert host_ip(port) in LOOPBACK, f"{path.name}: {name} publishes {port!r} on every address"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.name)
def test_redis_urls_name_a_service_of_the_same_file(path: Path) -> None:
    found = services(path)
    for name, service in found.items():
        url = environment(service).get("TOKENER_REDIS_URL")
        if url is not None:
            assert urlsplit(url).hostname in set(found), f"{path.name}: {name} points at {url}"


def test_the_docker_page_redis_command_names_the_profiles_service() -> None:
    readme = (ROOT / "docs" / "docker.md").read_text()
    used = set(re.findall(r"TOKENER_REDIS_URL=redis://([\w.-]+):6379", readme))
    assert used, "docs/docker.md shows no compose command with TOKENER_REDIS_URL"
    assert used <= set(services(ROOT / "docker-compose.yml"))


def test_the_image_listens_where_it_says_and_not_as_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    default_port = Settings().port
    assert re.search(rf"^EXPOSE {default_port}$", dockerfile, re.MULTILINE)
    assert re.search(rf"^\s+PORT={default_port} ", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users, "the image would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
