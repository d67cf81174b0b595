"""Reading /metrics (Prometheus text format)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, labels: dict[str, str]) -> float:
    """The value of sample `name` whose labels include `labels`; 0 when there is none."""
    # Parsed properly: label values may hold commas ("a,b" names two root fields).
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0
