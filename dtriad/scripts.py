"""Lua scripts run inside the Redis backends.

Ring metadata lives in database 1 of every backend (``dtriad:fence``, the ring
token in force, and ``dtriad:ring``, the ring state as JSON), so users never
see it in database 0: not in KEYS, SCAN, DBSIZE or a migration.
"""

from __future__ import annotations

META_DB = 1
FENCE_KEY = "dtriad:fence"
RING_KEY = "dtriad:ring"

# ARGV[1] = the writer's ring token, ARGV[2..] = the command. A writer whose
# ring is older than the backend's fence is refused with "STALERING <fence>"
# and must fetch the ring again. Redis's own errors (WRONGTYPE ...) come back
# unchanged thanks to pcall.
FENCED = """
redis.call('SELECT', 1)
local fence = tonumber(redis.call('GET', 'dtriad:fence') or '0')
if tonumber(ARGV[1]) < fence then return redis.error_reply('STALERING ' .. fence) end
redis.call('SELECT', 0)
return redis.pcall(unpack(ARGV, 2))
"""

# -> {fence, ring JSON or false}
READ_META = """
redis.call('SELECT', 1)
return {tonumber(redis.call('GET', 'dtriad:fence') or '0'), redis.call('GET', 'dtriad:ring')}
"""

# ARGV[1] = token, ARGV[2] = ring JSON. Never goes back: -> the fence in force.
PUBLISH_META = """
redis.call('SELECT', 1)
local fence = tonumber(redis.call('GET', 'dtriad:fence') or '0')
local token = tonumber(ARGV[1])
if token >= fence then
  redis.call('SET', 'dtriad:fence', token)
  redis.call('SET', 'dtriad:ring', ARGV[2])
  return token
end
return fence
"""

# Scan one chunk of database 0 and keep the keys whose ring position falls in
# one of the given ranges. ARGV[1] = cursor, ARGV[2] = COUNT, ARGV[3] = "copy"
# (return matching keys and their range index) or "delete" (UNLINK them and
# return how many), ARGV[4..] = sorted, non-overlapping ranges as pairs of
# 40-digit hex positions (start, end], each followed by its label:
# start1, end1, label1, start2, ... A wrapping arc is given as two ranges.
# -> {next cursor, key1, label1, key2, label2, ...} or {next cursor, count}.
SCAN_ARCS = """
local res = redis.call('SCAN', ARGV[1], 'COUNT', ARGV[2])
local out = {res[1]}
local n = (#ARGV - 3) / 3
local deleted = 0
for _, key in ipairs(res[2]) do
  local h = key
  local s = string.find(key, '{', 1, true)
  if s then
    local e = string.find(key, '}', s + 1, true)
    if e and e > s + 1 then h = string.sub(key, s + 1, e - 1) end
  end
  local pos = redis.sha1hex(h)
  local lo, hi = 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if ARGV[3 + 3 * mid - 1] < pos then lo = mid + 1 else hi = mid end
  end
  if n > 0 and pos <= ARGV[3 + 3 * lo - 1] and pos > ARGV[3 + 3 * lo - 2] then
    if ARGV[3] == 'delete' then
      redis.call('UNLINK', key)
      deleted = deleted + 1
    else
      out[#out + 1] = key
      out[#out + 1] = ARGV[3 + 3 * lo]
    end
  end
end
if ARGV[3] == 'delete' then out[2] = deleted end
return out
"""

# KEYS = keys; -> for each key {type, sha1 of its value, ttl in ms}, so copies
# can be compared without shipping values.
DIGEST = """
local out = {}
for i, key in ipairs(KEYS) do
  local t = redis.call('TYPE', key)['ok']
  local v = ''
  if t == 'string' then v = redis.call('GET', key)
  elseif t == 'list' then v = table.concat(redis.call('LRANGE', key, 0, -1), '\\0')
  elseif t == 'hash' then
    local h = redis.call('HGETALL', key)
    local pairs_ = {}
    for j = 1, #h, 2 do pairs_[#pairs_ + 1] = h[j] .. '\\1' .. h[j + 1] end
    table.sort(pairs_)
    v = table.concat(pairs_, '\\0')
  elseif t == 'set' then
    local m = redis.call('SMEMBERS', key)
    table.sort(m)
    v = table.concat(m, '\\0')
  elseif t == 'zset' then
    v = table.concat(redis.call('ZRANGE', key, 0, -1, 'WITHSCORES'), '\\0')
  end
  out[i] = {t, redis.sha1hex(v), redis.call('PTTL', key)}
end
return out
"""


def hex_position(position: int) -> str:
    return format(position, "040x")


def arc_ranges(arcs: list[tuple[int, int, str]]) -> list[str]:
    """``(start, end, label)`` arcs -> the sorted flat ARGV ranges of SCAN_ARCS.

    ``start == end`` is the whole ring. A wrapping arc is split in two; the
    lowest range starts at ``""``, below every 40-digit hex position.
    """
    top = "f" * 40
    pieces: list[tuple[str, str, str]] = []
    for start, end, label in arcs:
        if start == end:
            pieces.append(("", top, label))
        elif start < end:
            pieces.append((hex_position(start), hex_position(end), label))
        else:
            pieces.append((hex_position(start), top, label))
            pieces.append(("", hex_position(end), label))
    pieces.sort(key=lambda p: p[1])
    flat: list[str] = []
    for piece in pieces:
        flat.extend(piece)
    return flat

# KEYS[1] -> {serialized value, ms to live (-1: none)} or false if no such key.
DUMP_TTL = """
local payload = redis.call('DUMP', KEYS[1])
if not payload then return false end
return {payload, redis.call('PTTL', KEYS[1])}
"""
