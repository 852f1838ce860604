"""Backend clients: how a command reaches a Redis backend.

* :mod:`.outcome` is the vocabulary the request core and both clients share:
  the effects a step asks for (``Execute``, ``Fanout``, ``Pause``), what came
  back (``Outcome``), which errors mean "down", the suspect table, and the
  EVALSHA-then-EVAL rule;
* :mod:`.client` is the threaded client (one redis-py pool per backend);
* :mod:`.aclient` is the pipelined asyncio client the RESP front end uses.
"""
