"""The README's HTTP method table lists exactly the methods the command table
declares (``commands.METHODS``), so the one hand-written copy cannot drift."""

import re
from pathlib import Path

from dtriad.core.commands import METHODS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_lists_every_http_method_and_no_other():
    section = README.read_text().split("## HTTP API", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    public = [name for name, method in METHODS.items() if method.group.value != "internal"]
    assert sorted(listed) == sorted(public)
    assert len(listed) == len(set(listed))


def test_the_readme_lists_every_served_redis_command():
    from dtriad.core.commands import REDIS

    section = README.read_text().split("## Redis protocol (RESP)", 1)[1].split("\n## ", 1)[0]
    table = section.split("| group | commands |", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"\b[A-Z][A-Z_]+\b", table))
    assert set(REDIS) <= listed, sorted(set(REDIS) - listed)
