"""Front ends: thin adapters over the one request core.

* :mod:`.http` is the spyne RPC service (the paper's DTServer), generated
  from the command table, and :mod:`.httpd` serves it with granian;
* :mod:`.resp` is the sans-I/O RESP2/RESP3 parser and encoder, and
  :mod:`.respd` the asyncio RESP server (the redis-cli/redis-py port).
"""
