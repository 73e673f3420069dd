"""Reads the service's /metrics answer with prometheus_client's own parser, as a scraper would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """Every sample of one scrape, looked up by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.types: dict[str, str] = {}
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))

    def value(self, name: str, **labels: str) -> float:
        """The one sample named ``name`` whose labels include ``labels``; 0 if the series is absent."""
        found = [value for have, value in self.samples.get(name, []) if labels.items() <= have.items()]
        assert len(found) <= 1, f"{name} {labels} matches {len(found)} series"
        return found[0] if found else 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum over every series named ``name`` whose labels include ``labels``."""
        return sum(value for have, value in self.samples.get(name, []) if labels.items() <= have.items())

    def label_values(self, name: str, label: str) -> set[str]:
        return {have[label] for have, _ in self.samples.get(name, []) if label in have}
