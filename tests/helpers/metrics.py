"""Reading a ``--metrics`` endpoint as Prometheus would: the text format, parsed
by ``prometheus_client``'s own parser, and ``promtool check metrics``."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape: every sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.types: dict[str, str] = {}
        self.samples: dict[tuple[str, frozenset], float] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, /, **labels: str) -> float:
        """The sample ``name`` with exactly these labels (``service`` needs not be given)."""
        matches = [
            v for (n, ls), v in self.samples.items()
            if n == name and all(dict(ls).get(k) == str(x) for k, x in labels.items())
            and set(dict(ls)) - {"service"} <= set(labels)
        ]  # fmt: skip
        assert len(matches) == 1, f"{name} {labels}: {len(matches)} samples in\n{self.text}"
        return matches[0]

    def get(self, name: str, default: float = 0.0, /, **labels: str) -> float:
        """Like ``value``, but ``default`` when there is no such sample."""
        try:
            return self.value(name, **labels)
        except AssertionError:
            return default

    def labels(self, name: str, label: str) -> dict[str, float]:
        """``label`` value -> sample value, for every sample of ``name``."""
        return {dict(ls)[label]: v for (n, ls), v in self.samples.items()
                if n == name and label in dict(ls)}  # fmt: skip


def scrape(address: str, timeout: float = 10) -> Scrape:
    """GET http://ADDRESS/metrics."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return Scrape(resp.read().decode())


def promtool_problems(text: str) -> str:
    """What ``promtool check metrics`` says about ``text`` ('' when it is clean);
    None when promtool is not installed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return None
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    return (done.stdout + done.stderr).strip() if done.returncode else ""
