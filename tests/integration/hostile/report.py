"""The summary of a hostile-input run: every input, what it got, and counts
by transport and outcome; printed at the end of the module (``pytest -s``)
and written to ``test-artifacts/hostile-inputs.md``."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ARTIFACTS = Path(os.environ.get("DTRIAD_ARTIFACTS")
                 or Path(__file__).resolve().parents[3] / "test-artifacts")


@dataclass
class Entry:
    name: str
    transport: str
    sent: str
    must: str
    outcome: str = "not run"  # the class of what it got: "error, kept open", "4xx" ...
    got: str = ""
    passed: bool = False


class Report:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        return entry

    def counts(self) -> Counter:
        return Counter((e.transport, e.outcome) for e in self.entries)

    def markdown(self, backends: str) -> str:
        passed = sum(e.passed for e in self.entries)
        lines = [
            "# Hostile inputs against a real local cluster",
            "",
            f"`tests/integration/test_hostile.py`, backends: {backends}. "
            f"{len(self.entries)} inputs, {passed} behaved as required, "
            f"{len(self.entries) - passed} did not.",
            "",
            "## Counts by transport and outcome",
            "",
            "| transport | outcome | inputs |",
            "|---|---|---|",
        ]
        for (transport, outcome), n in sorted(self.counts().items()):
            lines.append(f"| {transport} | {outcome} | {n} |")
        by_transport = Counter(e.transport for e in self.entries)
        lines += ["", "| transport | inputs | as required |", "|---|---|---|"]
        for transport, n in sorted(by_transport.items()):
            ok = sum(e.passed for e in self.entries if e.transport == transport)
            lines.append(f"| {transport} | {n} | {ok} |")
        lines += ["", "## Every input", "",
                  "| # | name | transport | sent | must | got | as required |",
                  "|---|---|---|---|---|---|---|"]
        for i, e in enumerate(self.entries, 1):
            cells = [str(i), e.name, e.transport, e.sent, e.must, e.got,
                     "yes" if e.passed else "**NO**"]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"

    def write(self, backends: str) -> Path:
        text = self.markdown(backends)
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / "hostile-inputs.md"
        path.write_text(text)
        return path


def _cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= 160 else text[:157] + "..."
