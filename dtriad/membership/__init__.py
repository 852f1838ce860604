"""Membership: who is in the ring, and moving keys when that changes.

* :mod:`.dtsentinel` is the DTSentinel: it follows Redis Sentinel, decides
  ring changes, fences, migrates and publishes (``docs/membership.md``);
* :mod:`.leader` is its lease on a majority of backends;
* :mod:`.executor` performs a migration plan on real backends;
* :mod:`.registration` registers backends with Redis Sentinel;
* :mod:`.check` compares every copy of every key (``dtriad check``).
"""
