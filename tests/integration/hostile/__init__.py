"""Helpers of ``tests/integration/test_hostile.py``: raw RESP and HTTP/1.1
sockets (:mod:`.wire`), and the summary table of what each input got
(:mod:`.report`)."""
