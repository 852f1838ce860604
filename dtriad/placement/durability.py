"""The probability of losing data when nodes fail: pure math, no I/O.

A key is lost when every node holding a copy of it has failed. So what decides
durability is the list of *copy sets*: the distinct sets of nodes that together
hold some key. dtriad's ring gives one copy set per arc (the arc's master and
its ``r`` successors); a Redis primary/replica layout gives one per shard.

Two failure models:

* ``f`` nodes fail at once, the set chosen uniformly among the ``C(N, f)``
  sets: the probability that the failed set contains some copy set;
* every node fails independently with probability ``p``: the same, mixed over
  ``f`` by the binomial distribution.

Three ways to the answer, which the tests and ``benchmarks/durability.py``
compare: closed forms (:func:`dt_loss`, :func:`redis_loss`), counting every
failure set (:func:`loss_by_enumeration`, exact for any ring, vnodes included)
and sampling (:func:`simulate`). All assume "at once": no repair runs between
the failures. With repair between them, dtriad restores ``r + 1`` copies after
each failure and loses nothing until a single node is left.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from fractions import Fraction

from dtriad.exceptions import ConfigurationError
from dtriad.placement.ring import Ring


def copy_sets(ring: Ring) -> list[frozenset[str]]:
    """The distinct sets of nodes that hold some arc of ``ring`` (every copy of
    the keys hashed into that arc)."""
    return sorted({frozenset(arc.owners) for arc in ring.arcs()}, key=sorted)


def redis_shards(nodes: int, replicas: int) -> list[int]:
    """Shard sizes of a Redis primary/replica layout with at least ``replicas + 1``
    copies of everything on ``nodes`` nodes: ``nodes // (replicas + 1)`` shards
    (one primary and its replicas each), spare nodes added as extra replicas
    one per shard, as Redis Cluster's replica migration would place them. A
    shard's replicas are fixed: nothing copies a shard to a new node."""
    _check(nodes, replicas)
    copies = replicas + 1
    shards = max(1, nodes // copies)
    return [nodes // shards + (1 if i < nodes % shards else 0) for i in range(shards)]


def redis_copy_sets(nodes: Sequence[str], replicas: int) -> list[frozenset[str]]:
    """The copy sets of :func:`redis_shards` over ``nodes`` (consecutive runs)."""
    sets, start = [], 0
    for size in redis_shards(len(nodes), replicas):
        sets.append(frozenset(nodes[start:start + size]))
        start += size
    return sets


def _check(nodes: int, replicas: int, failed: int | None = None) -> None:
    if not isinstance(nodes, int) or nodes < 1:
        raise ConfigurationError(f"the number of nodes must be an integer >= 1, got {nodes!r}")
    if not isinstance(replicas, int) or replicas < 0:
        raise ConfigurationError(f"replicas must be an integer >= 0, got {replicas!r}")
    if failed is not None and not (isinstance(failed, int) and 0 <= failed <= nodes):
        raise ConfigurationError(f"failed nodes must be an integer in [0, {nodes}], got {failed!r}")


def dt_safe_sets(nodes: int, replicas: int, failed: int) -> int:
    """How many of the ``C(N, f)`` failure sets leave a copy of every key, for
    dtriad with one token per node.

    With one token per node the copy sets are the ``N`` windows of ``c = r + 1``
    consecutive nodes around the ring (``c`` capped at ``N``), so a failure set
    is safe when it holds no run of ``c`` consecutive nodes. Cut the circle at
    the ``m = N - f`` survivors: the failed nodes fall into ``m`` gaps of
    ``0..c-1`` nodes each, and each labelled circle is counted once per survivor
    among ``N`` rotations, so::

        safe = N / m * sum_j (-1)^j C(m, j) C(N - 1 - j c, m - 1)

    (inclusion-exclusion over the ``j`` gaps that hold ``c`` or more).
    """
    _check(nodes, replicas, failed)
    copies = min(replicas + 1, nodes)
    survivors = nodes - failed
    if survivors == 0:
        return 0
    total, j = 0, 0
    while nodes - 1 - j * copies >= survivors - 1 and j <= survivors:
        total += (-1) ** j * math.comb(survivors, j) * math.comb(nodes - 1 - j * copies,
                                                                 survivors - 1)
        j += 1
    safe, rest = divmod(nodes * total, survivors)
    assert rest == 0, "the rotation argument counts each circle exactly m times"
    return safe


def dt_loss(nodes: int, replicas: int, failed: int) -> Fraction:
    """P(some key loses every copy) when ``failed`` of ``nodes`` fail at once
    (chosen uniformly), dtriad with one token per node: ``1 - safe / C(N, f)``."""
    return 1 - Fraction(dt_safe_sets(nodes, replicas, failed), math.comb(nodes, failed))


def redis_loss(nodes: int, replicas: int, failed: int) -> Fraction:
    """The same for the Redis layout of :func:`redis_shards`: a failure set is
    safe when no shard is wholly in it, so the safe sets are the coefficient of
    ``x^f`` in ``prod over shards ((1 + x)^s - x^s)``."""
    _check(nodes, replicas, failed)
    poly = [1]
    for size in redis_shards(nodes, replicas):
        factor = [math.comb(size, k) for k in range(size)] + [0]  # (1+x)^s - x^s
        poly = [sum(poly[i] * factor[k - i] for i in range(len(poly)) if 0 <= k - i < len(factor))
                for k in range(len(poly) + size)]
    return 1 - Fraction(poly[failed], math.comb(nodes, failed))


def _masks(nodes: Sequence[str], sets: Sequence[frozenset[str]]) -> list[int]:
    index = {node: i for i, node in enumerate(nodes)}
    unknown = {n for s in sets for n in s} - set(index)
    if unknown:
        raise ConfigurationError(f"copy sets name nodes not in the list: {sorted(unknown)}")
    masks = {sum(1 << index[n] for n in s) for s in sets}
    # A failure set containing a smaller copy set contains every superset too.
    return [m for m in masks if not any(o != m and o & m == o for o in masks)]


def loss_by_enumeration(nodes: Sequence[str], sets: Sequence[frozenset[str]],
                        failed: int) -> Fraction:
    """P(the failed set contains some copy set), counting all ``C(N, f)``
    failure sets: exact for any layout (vnodes included); fine up to N ~ 16."""
    _check(len(nodes), 0, failed)
    masks = _masks(nodes, sets)
    lost = total = 0
    for chosen in itertools.combinations(range(len(nodes)), failed):
        down = sum(1 << i for i in chosen)
        total += 1
        lost += any(m & down == m for m in masks)
    return Fraction(lost, total)


def loss_given_p(nodes: int, p: float, loss_at: Callable[[int], Fraction | float]) -> float:
    """P(loss) when each node fails independently with probability ``p``:
    ``sum_f C(N, f) p^f (1 - p)^(N - f) loss_at(f)``."""
    if not 0.0 <= p <= 1.0:
        raise ConfigurationError(f"p must lie in [0, 1], got {p!r}")
    return sum(math.comb(nodes, f) * p ** f * (1 - p) ** (nodes - f) * float(loss_at(f))
               for f in range(nodes + 1))


def simulate(nodes: Sequence[str], sets: Sequence[frozenset[str]], trials: int,
             rng: random.Random, failed: int | None = None, p: float | None = None
             ) -> tuple[int, int]:
    """Monte Carlo: ``(trials that lost data, trials)``. Each trial fails
    ``failed`` nodes chosen uniformly, or each node with probability ``p``."""
    if (failed is None) == (p is None):
        raise ConfigurationError("give exactly one of failed= and p=")
    masks = _masks(nodes, sets)
    count = len(nodes)
    lost = 0
    for _ in range(trials):
        if failed is not None:
            down = sum(1 << i for i in rng.sample(range(count), failed))
        else:
            down = sum(1 << i for i in range(count) if rng.random() < p)
        lost += any(m & down == m for m in masks)
    return lost, trials


def wilson(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95% by default);
    unlike the normal approximation it stays inside [0, 1] and is not empty
    at 0 or ``trials`` successes."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ConfigurationError(f"need 0 <= successes <= trials and trials > 0, "
                                 f"got {successes}/{trials}")
    phat = successes / trials
    denom = 1 + z * z / trials
    centre = (phat + z * z / (2 * trials)) / denom
    half = z * math.sqrt(phat * (1 - phat) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def paper_dt(nodes: int, replicas: int, p: float) -> float:
    """The paper's equation 2, as printed: ``p^(N-r) (N-r-2)! / N!`` (undefined,
    NaN, when ``r > N - 2``)."""
    if nodes - replicas - 2 < 0:
        return math.nan
    return p ** (nodes - replicas) * math.factorial(nodes - replicas - 2) / math.factorial(nodes)


def paper_redis(nodes: int, replicas: int, p: float) -> float:
    """The paper's equation 1, as printed, reading its undefined ``k`` as
    ``r + 1`` (the master and its ``r`` backups): ``p^k r! (N-r-1)! / (N-1)!``
    (NaN when ``r > N - 1``)."""
    if nodes - replicas - 1 < 0:
        return math.nan
    return (p ** (replicas + 1) * math.factorial(replicas)
            * math.factorial(nodes - replicas - 1) / math.factorial(nodes - 1))
