"""Placement: where every key lives. Pure: no I/O, no import of the rest.

* :mod:`.ring` hashes keys and nodes onto the SHA-1 circle and walks it
  clockwise for a key's preference list (its master and ``r`` successors);
* :mod:`.ringstate` is the published ring: epoch, fence token, members with
  their incarnations, and a pending ring while a migration runs; a
  :class:`~.ringstate.View` answers where one key's copies are;
* :mod:`.planner` turns an old ring and a new one into the transfers and
  cleanups that restore the invariants.
"""
