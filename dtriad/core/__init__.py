"""The request core: one path from a Redis command to every copy of its key.

* :mod:`.commands` is the command table (what is served, its arity, its
  routing, and the HTTP methods built on it);
* :mod:`.steps` drives sans-I/O request steps with either client;
* :mod:`.requests` is the replication protocol (reads, writes, repair);
* :mod:`.follower` follows the ring the DTSentinel publishes;
* :mod:`.reports` answers the admin reports (ring, health, keyDist, dbsize);
* :mod:`.dtcore` puts them together for a DTServer;
* :mod:`.scripts` holds the Lua every backend runs (versions, fence, intents);
* :mod:`.repair` queues and settles the keys a write left behind.
"""
