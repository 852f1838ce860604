"""Operations tooling; nothing on the request path imports it.

* :mod:`.main` is the ``dtriad`` command line (click);
* :mod:`.shell` is the DT CLI shell (``dtriad cli``) and :mod:`.shell_rules`
  its pure half (parsing and printing as redis-cli does);
* :mod:`.cluster` runs a local cluster, :mod:`.procs` its processes,
  :mod:`.demo` the demo;
* :mod:`.host` runs one production host, :mod:`.units` writes its
  configuration and service units.
"""
