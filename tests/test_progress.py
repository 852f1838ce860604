"""Progress: a bar on a terminal, a few plain lines in a log."""

import io

from dtriad.ops.progress import Progress


def test_plain_lines_off_a_terminal_are_throttled_and_end_with_the_last_state():
    out = io.StringIO()
    show = Progress("check", stream=out, every=3600)
    for done in range(0, 10_001, 1000):
        show("scanning", done, 10_000)
    show("comparing", 5, 5, "all copies")
    show.close()
    assert out.getvalue().splitlines() == [
        "check: scanning 0/10000 (0%)",  # the first at once, then at most one per `every`
        "check: scanning 10000/10000 (100%)",  # the last state of a phase, once it ends
        "check: comparing 5/5 (100%) all copies",
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_per_phase():
    out = Terminal()
    show = Progress("migration", stream=out)
    show("epoch 3", 1, 4, "100 keys, 50/s")
    show("epoch 3", 4, 4, "400 keys, 60/s")
    show.close()
    text = out.getvalue()
    assert "migration: epoch 3 (400 keys, 60/s)" in text and "4/4" in text
