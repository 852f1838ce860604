"""Lua scripts run inside the Redis backends.

Ring metadata lives in database 1 of every backend (``dtriad:fence``, the ring
token in force, and ``dtriad:ring``, the ring state as JSON), and each key's
version in database 2 under the key's own name, so users never see either in
database 0: not in KEYS, SCAN, DBSIZE or keyDist. See ``docs/consistency.md``
for the replication protocol the ``WRITE_*``, ``STATE``, ``INSTALL`` and
``BUMP`` scripts implement.
"""

from __future__ import annotations

META_DB = 1
VERSION_DB = 2
SCRATCH_DB = 3  # empty outside the SCRATCH script
# A version outlives its key by this long (a tombstone), so a late write of
# an older version is still recognised after a delete or an expiry.
TOMBSTONE_MS = 600_000
FENCE_KEY = "dtriad:fence"
RING_KEY = "dtriad:ring"
# Keys locked by a transaction whose keys span masters (core/transactions.py):
# a hash in database 1, key -> "txid coordinator started-ms" of its owner.
LOCKS_KEY = "dtriad:locks"
TXN_PREFIX = "dtriad:txn:"  # a transaction's record on its coordinator (database 1)

# Shared pieces of the replication scripts. Every script that writes starts
# with redis.replicate_commands() (needed on Redis 6.2 to write after TIME or
# DUMP; a no-op on 7) and, for writes, the fence: ARGV[1] is the writer's ring
# token, refused with "STALERING <fence>" if the backend knows a newer ring.
# Versions are decimal strings: a Lua number holds a microsecond timestamp
# exactly (2^53), but its default formatting would round it.
# Arguments a script passes to one redis.call at most: Lua 5.1's unpack stops
# near 8,000 values (LUAI_MAXCSTACK), and the C stack holds more than these.
SLICE = 4000
UNPACK = 7000  # below this, a command that cannot be sliced still runs in one call

_PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end
local function fmt(v) return string.format('%.0f', v) end
local function versions(keys)
  redis.call('SELECT', @VERSION_DB@)
  local out = {}
  for i, k in ipairs(keys) do out[i] = tonumber(redis.call('GET', k) or '0') end
  redis.call('SELECT', 0)
  return out
end
local function stamp(keys, version)
  local ttls = {}
  for i, k in ipairs(keys) do ttls[i] = redis.call('PTTL', k) end
  redis.call('SELECT', @VERSION_DB@)
  for i, k in ipairs(keys) do
    if ttls[i] == -1 then redis.call('SET', k, fmt(version))
    elseif ttls[i] == -2 then redis.call('SET', k, fmt(version), 'PX', @TOMBSTONE_MS@)
    else redis.call('SET', k, fmt(version), 'PX', ttls[i] + @TOMBSTONE_MS@) end
  end
  redis.call('SELECT', 0)
end
-- A Lua number is a double: an integer reply beyond 2^53 (INCRBY, HINCRBY
-- near the 64-bit limits) would come back rounded, so it is re-read as text.
-- cmd = the index of the command's name in ARGV. -> reply, exact?
local function exact(reply, cmd)
  if type(reply) ~= 'number' or math.abs(reply) < 9007199254740992 then return reply, false end
  if string.upper(ARGV[cmd]) == 'HINCRBY' then
    return redis.call('HGET', KEYS[1], ARGV[cmd + 2]), true
  end
  return redis.call('GET', KEYS[1]), true
end
-- Lua's unpack stops near 8,000 values (LUAI_MAXCSTACK), so a command with
-- more arguments runs in slices, each with the command's fixed head: a
-- command that takes its items one by one (SADD k m1 m2 = SADD k m1 + SADD k
-- m2) gives the same effect and the reply combined. Only commands whose one
-- possible error (the key's type) the first slice meets are here: ZADD and
-- GEOADD are not, since a bad score in a later slice would leave the earlier
-- ones applied. name -> {head, unit, combine}.
local function sliced(at)
  -- built here, not at the top: every script includes this prelude, and
  -- building the table on each call cost a fifth of a write's Lua time
  local SLICES = {
    SADD = {1, 1, 'sum'}, SREM = {1, 1, 'sum'}, ZREM = {1, 1, 'sum'}, HDEL = {1, 1, 'sum'},
    RPUSH = {1, 1, 'last'}, LPUSH = {1, 1, 'last'}, RPUSHX = {1, 1, 'last'},
    LPUSHX = {1, 1, 'last'}, HSET = {1, 2, 'sum'}, HMSET = {1, 2, 'ok'}, MSET = {0, 2, 'ok'},
    DEL = {0, 1, 'sum'}, UNLINK = {0, 1, 'sum'}, EXISTS = {0, 1, 'sum'}, TOUCH = {0, 1, 'sum'},
    PFADD = {1, 1, 'any'},
    MGET = {0, 1, 'concat'}, HMGET = {1, 1, 'concat'}, SMISMEMBER = {1, 1, 'concat'},
    ZMSCORE = {1, 1, 'concat'},
  }
  local name = string.upper(ARGV[at])
  local rule = SLICES[name]
  local n = #ARGV - at
  if not rule and n < @UNPACK@ then  -- one call still fits
    return redis.pcall(unpack(ARGV, at))
  end
  if name == 'MSETNX' and n % 2 == 0 then
    for i = at + 1, #ARGV, 2 do
      if redis.call('EXISTS', ARGV[i]) == 1 then return 0 end
    end
    name, rule = 'MSET', SLICES.MSET
  end
  if not rule then
    return redis.error_reply('ERR ' .. name .. ' with ' .. n .. ' arguments: dtriad runs '
      .. 'at most @UNPACK@ arguments of it at once (it cannot split it item by item)')
  end
  local head, unit, how = rule[1], rule[2], rule[3]
  if n <= head or (n - head) % unit ~= 0 then
    return redis.error_reply("ERR wrong number of arguments for '" .. string.lower(name)
      .. "' command")
  end
  local step = math.floor(@SLICE@ / unit) * unit
  local total, out, reply = 0, {}, nil
  for first = at + 1 + head, #ARGV, step do
    local args = {name}
    for i = at + 1, at + head do args[#args + 1] = ARGV[i] end
    for i = first, math.min(first + step - 1, #ARGV) do args[#args + 1] = ARGV[i] end
    reply = redis.pcall(unpack(args))
    if type(reply) == 'table' and reply.err then return reply end
    if how == 'sum' then total = total + reply
    elseif how == 'any' then total = math.max(total, reply)
    elseif how == 'concat' then for _, v in ipairs(reply) do out[#out + 1] = v end end
  end
  if how == 'sum' or how == 'any' then return total end
  if how == 'concat' then return out end
  if name == 'MSET' and string.upper(ARGV[at]) == 'MSETNX' then return 1 end
  return reply
end
-- Run the client's command ARGV[at..]. INCRBYFLOAT is run as HINCRBYFLOAT
-- on a scratch hash (the same long-double arithmetic and formatting): Redis
-- 6.2 rewrites INCRBYFLOAT's arguments into SET ... KEEPTTL, growing the
-- argument array a script call shares, which corrupts the server's heap.
local incrbyfloat
local function run(at)
  if #ARGV - at >= @SLICE@ then return sliced(at) end
  if string.upper(ARGV[at]) ~= 'INCRBYFLOAT' or #ARGV ~= at + 2 then
    return redis.pcall(unpack(ARGV, at))
  end
  return incrbyfloat(ARGV[at + 1], ARGV[at + 2])
end
-- One command given as a table (a transaction's), run in database db: as
-- run(). A blocking command runs as Redis runs it inside MULTI, without
-- waiting: BLPOP k1 k2 t pops from the first non-empty key ({key, value}, or
-- nil), BLMOVE is LMOVE, XREAD ... BLOCK n is XREAD.
local function call(args, db)
  local name = string.upper(args[1])
  local BPOPS = {BLPOP = 'LPOP', BRPOP = 'RPOP', BZPOPMIN = 'ZPOPMIN', BZPOPMAX = 'ZPOPMAX'}
  if name == 'INCRBYFLOAT' and #args == 3 then
    return incrbyfloat(args[2], args[3], db)
  end
  local pop = BPOPS[name]
  if pop then
    for i = 2, #args - 1 do
      local got = redis.pcall(pop, args[i])
      if type(got) == 'table' and got.err then return got end
      if type(got) == 'table' and #got > 0 then return {args[i], got[1], got[2]} end
      if type(got) == 'string' then return {args[i], got} end
    end
    return false
  end
  if name == 'BRPOPLPUSH' then return redis.pcall('RPOPLPUSH', args[2], args[3]) end
  if name == 'BLMOVE' then return redis.pcall('LMOVE', args[2], args[3], args[4], args[5]) end
  if name == 'XREAD' or name == 'XREADGROUP' then
    -- the options as Redis reads them: COUNT takes a value, GROUP two (a
    -- group or consumer called BLOCK or STREAMS is not an option)
    local kept, i = {args[1]}, 2
    while i <= #args do
      local word = string.upper(args[i])
      if word == 'STREAMS' then
        for j = i, #args do kept[#kept + 1] = args[j] end
        break
      end
      local width = 1
      if word == 'COUNT' or word == 'BLOCK' then width = 2
      elseif word == 'GROUP' and name == 'XREADGROUP' then width = 3 end
      if word ~= 'BLOCK' then
        for j = i, math.min(i + width - 1, #args) do kept[#kept + 1] = args[j] end
      end
      i = i + width
    end
    return redis.pcall(unpack(kept))
  end
  return redis.pcall(unpack(args))
end
incrbyfloat = function(key, by, db)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= 'string' then
    return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
  end
  local old = redis.call('GET', key)
  redis.call('SELECT', @SCRATCH_DB@)
  redis.call('DEL', 'dtriad:float')
  if old then redis.call('HSET', 'dtriad:float', 'v', old) end
  local new = redis.pcall('HINCRBYFLOAT', 'dtriad:float', 'v', by)
  redis.call('DEL', 'dtriad:float')
  redis.call('SELECT', db or 0)
  if type(new) == 'table' and new.err then
    if string.find(new.err, 'hash value is not a float') then
      return redis.error_reply('ERR value is not a valid float')
    end
    return new
  end
  redis.call('SET', key, new, 'KEEPTTL')
  return new
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- The owner of the first of keys locked by a transaction other than mine
-- (see LOCKS_KEY), or false.
local function locked(keys, mine)
  redis.call('SELECT', @META_DB@)
  if redis.call('EXISTS', '@LOCKS_KEY@') == 1 then
    for _, k in ipairs(keys) do
      local owner = redis.call('HGET', '@LOCKS_KEY@', k)
      if owner and owner ~= mine then
        redis.call('SELECT', 0)
        return owner
      end
    end
  end
  redis.call('SELECT', 0)
  return false
end
"""

# Leadership among DTSentinels (dtriad/membership/leader.py): ``dtriad:leader`` in
# database 1 names the DTSentinel holding the lease on this backend. The
# scripts that change a member's data or its ring (WIPE, FENCE_ONLY,
# PUBLISH_META, SCAN_ARCS delete) take the caller's holder id and refuse with
# NOTLEADER if another DTSentinel holds the lease here; '' skips the check.
_LEADER = """
local function not_leader(holder)
  if holder == '' then return false end
  redis.call('SELECT', @META_DB@)
  local current = redis.call('GET', 'dtriad:leader')
  redis.call('SELECT', 0)
  return current and current ~= holder
end
"""

# ARGV[1] = holder id, ARGV[2] = lease in ms. Grant (or renew) the lease on
# this backend unless another holder has it. -> 1, or the current holder.
LEASE = """
redis.call('SELECT', @META_DB@)
local current = redis.call('GET', 'dtriad:leader')
if current and current ~= ARGV[1] then return current end
redis.call('SET', 'dtriad:leader', ARGV[1], 'PX', ARGV[2])
return 1
"""

# ARGV[1] = holder id: give the lease up on this backend if it is ours.
RELEASE = """
redis.call('SELECT', @META_DB@)
if redis.call('GET', 'dtriad:leader') == ARGV[1] then redis.call('DEL', 'dtriad:leader') end
return 1
"""

# A backend with no fence at all lost its ring metadata (restarted without
# its data, or flushed from outside) while writers know a ring: it is not a
# copy of anything until the DTSentinel brings it back.
_FENCE = """
redis.call('SELECT', @META_DB@)
local fence = redis.call('GET', '@FENCE_KEY@')
if not fence and tonumber(ARGV[1]) > 0 then
  return redis.error_reply('NOTADMITTED this backend lost its data (restarted empty or ' ..
    'flushed); it is not served until the DTSentinel brings it back')
end
fence = tonumber(fence or '0')
if tonumber(ARGV[1]) < fence then return redis.error_reply('STALERING ' .. fence) end
redis.call('SELECT', 0)
"""

# On the master (the key's authority). KEYS = the keys the command writes,
# ARGV[1] = ring token, ARGV[2..] = the command. A command Redis rejects
# (WRONGTYPE ...) comes back as that error, applied nowhere. Otherwise the
# keys get a new version: above their previous one and at least the current
# time in microseconds, so a history started later (a new master after a
# failure) still sorts after an older one.
# -> {reply, new version, previous version of each key..., ['int']}: the
# trailing 'int' says the reply is an integer sent as text (see exact()).
_MASTER = """
local owner = locked(KEYS)
if owner then return redis.error_reply('DTLOCKED ' .. owner) end
local prev = versions(KEYS)
local reply = run(first)
if type(reply) == 'table' and reply.err then return reply end
local whole
reply, whole = exact(reply, first)
local top = 0
for _, v in ipairs(prev) do if v > top then top = v end end
local version = math.max(top + 1, now_us())
stamp(KEYS, version)
-- the durable repair intent: cleared (CLEAN) once every copy holds this
-- version, else found by any DTServer's sweep (SWEEP) and reconciled
redis.call('SELECT', @META_DB@)
for _, k in ipairs(KEYS) do redis.call('ZADD', 'dtriad:dirty', fmt(version), k) end
-- no SELECT 0 after: a script's SELECT never reaches its caller's connection
local out = {reply, fmt(version)}
for i, v in ipairs(prev) do out[i + 2] = fmt(v) end
if whole then out[#out + 1] = 'int' end
return out
"""
WRITE_MASTER = _PRELUDE + _FENCE + "local first = 2\n" + _MASTER

# WRITE_MASTER only if KEYS[1] is still at version ARGV[2] (the command then
# starts at ARGV[3]): a compare-and-set for writes computed from a state read
# earlier (a multi-key command whose keys live on different nodes), so a
# write another client made in between is never overwritten. -> like
# WRITE_MASTER, or the error "DTCHANGED <version>".
WRITE_MASTER_IF = _PRELUDE + _FENCE + """
local now = fmt(versions({KEYS[1]})[1])
if now ~= ARGV[2] then return redis.error_reply('DTCHANGED ' .. now) end
local first = 3
""" + _MASTER

# On a backup. KEYS as above, ARGV[1] = token, ARGV[2] = the master's new
# version, ARGV[3..2+#KEYS] = the master's previous versions, then the command.
# The command is applied only if this copy is exactly at the master's previous
# versions, so backups apply a key's writes in the master's order, once each.
# -> {'applied', reply} | {'behind'} | {'ahead'} | {'failed', error}: the
# last three need the master's state (see INSTALL).
WRITE_BACKUP = _PRELUDE + _FENCE + """
local n = #KEYS
local have = versions(KEYS)
local version = tonumber(ARGV[2])
for i = 1, n do
  if have[i] >= version then return {'ahead'} end
end
for i = 1, n do
  if have[i] ~= tonumber(ARGV[2 + i]) then return {'behind'} end
end
local reply = run(3 + n)
if type(reply) == 'table' and reply.err then return {'failed', reply.err} end
reply = exact(reply, 3 + n)
stamp(KEYS, version)
return {'applied', reply}
"""

# Repair intents (``dtriad:dirty`` in database 1: key -> the version its
# master gave it). ARGV = key1, version1, key2, version2, ...: forget each
# intent whose version is still that one (every copy holds it); a newer
# write's intent stays. -> how many were forgotten.
CLEAN = """
redis.call('SELECT', @META_DB@)
local n = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', 'dtriad:dirty', ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    n = n + redis.call('ZREM', 'dtriad:dirty', ARGV[i])
  end
end
return n
"""

# ARGV[1] = age in microseconds, ARGV[2] = at most this many. -> {key1,
# version1, ...}: intents older than the age (their writer had time to clear
# them: it stopped, or a copy missed the write).
SWEEP = _PRELUDE + """
local before = now_us() - tonumber(ARGV[1])
redis.call('SELECT', @META_DB@)
return redis.call('ZRANGEBYSCORE', 'dtriad:dirty', '-inf', fmt(before), 'WITHSCORES',
                  'LIMIT', 0, tonumber(ARGV[2]))
"""

# KEYS[1] -> {version, serialized value or false, ms to live}: one copy's state.
STATE = _PRELUDE + """
local v = versions(KEYS)[1]
return {fmt(v), redis.call('DUMP', KEYS[1]), redis.call('PTTL', KEYS[1])}
"""

# Install a state taken by STATE or BUMP. KEYS[1], ARGV[1] = token, ARGV[2] =
# its version, ARGV[3] = serialized value ('' = no such key), ARGV[4] = ms to
# live. Only a newer version replaces this copy, so an old state arriving late
# never undoes a newer one. -> 'installed' | 'same' (already holds that value)
# | {this copy's version}: it is at least as new but differs, so the source
# must be bumped past it (BUMP) and installed again.
INSTALL = _PRELUDE + _FENCE + """
local key = KEYS[1]
local version = tonumber(ARGV[2])
local have = versions(KEYS)[1]
if have >= version then
  if (redis.call('DUMP', key) or '') == ARGV[3] then return 'same' end
  return {fmt(have)}
end
if ARGV[3] == '' then redis.call('DEL', key)
else redis.call('RESTORE', key, math.max(tonumber(ARGV[4]), 0), ARGV[3], 'REPLACE') end
stamp(KEYS, version)
return 'installed'
"""

# STATE of several keys at once: KEYS -> {version, value or false, ms to live} per key.
STATES = _PRELUDE + """
local v = versions(KEYS)
local out = {}
for i, k in ipairs(KEYS) do
  out[i] = {fmt(v[i]), redis.call('DUMP', k) or false, redis.call('PTTL', k)}
end
return out
"""

# INSTALL of several keys at once: KEYS, ARGV[1] = token, then per key its
# version, value ('' = no such key) and ms to live. -> INSTALL's answer per key.
INSTALL_MANY = _PRELUDE + _FENCE + """
local have = versions(KEYS)
local out = {}
for i, key in ipairs(KEYS) do
  local version, value, ttl = tonumber(ARGV[3 * i - 1]), ARGV[3 * i], tonumber(ARGV[3 * i + 1])
  if have[i] >= version then
    if (redis.call('DUMP', key) or '') == value then out[i] = 'same'
    else out[i] = {fmt(have[i])} end
  else
    if value == '' then redis.call('DEL', key)
    else redis.call('RESTORE', key, math.max(ttl, 0), value, 'REPLACE') end
    stamp({key}, version)
    out[i] = 'installed'
  end
end
return out
"""

# Give a copy's value a version above ARGV[2] without changing the value,
# so it wins over a copy that holds a newer version of different data.
# KEYS[1], ARGV[1] = token, ARGV[2] = the version to pass. -> like STATE.
BUMP = _PRELUDE + _FENCE + """
local v = math.max(versions(KEYS)[1] + 1, tonumber(ARGV[2]) + 1, now_us())
stamp(KEYS, v)
return {fmt(v), redis.call('DUMP', KEYS[1]), redis.call('PTTL', KEYS[1])}
"""

# A read that also says which version answered (quorum reads).
# KEYS[1], ARGV = the command. -> {version, 1, reply} or {version, 0, error}.
READ_VERSIONED = _PRELUDE + """
local v = versions(KEYS)[1]
local reply = run(1)
if type(reply) == 'table' and reply.err then return {fmt(v), 0, reply.err} end
return {fmt(v), 1, reply}
"""

# Empty a node's keyspace and its versions (a node joining afresh).
# ARGV[1] = holder id (see _LEADER).
WIPE = _LEADER + """
if not_leader(ARGV[1]) then return redis.error_reply('NOTLEADER another DTSentinel leads') end
redis.call('SELECT', @VERSION_DB@)
redis.call('FLUSHDB')
redis.call('SELECT', 0)
redis.call('FLUSHDB')
return 'OK'
"""

# -> {fence, ring JSON or false}
READ_META = """
redis.call('SELECT', @META_DB@)
return {tonumber(redis.call('GET', '@FENCE_KEY@') or '0'), redis.call('GET', '@RING_KEY@')}
"""

# ARGV[1] = token, ARGV[2] = holder id. Raise the fence only (the ring JSON
# stays): from here on this backend refuses writes by an older ring, while no
# DTServer can learn the new ring from it yet. -> the fence in force.
FENCE_ONLY = _LEADER + """
if not_leader(ARGV[2]) then return redis.error_reply('NOTLEADER another DTSentinel leads') end
redis.call('SELECT', @META_DB@)
local fence = tonumber(redis.call('GET', '@FENCE_KEY@') or '0')
local token = tonumber(ARGV[1])
if token > fence then
  redis.call('SET', '@FENCE_KEY@', token)
  return token
end
return fence
"""

# ARGV[1] = token, ARGV[2] = ring JSON, ARGV[3] = holder id (optional).
# Never goes back: -> the fence in force.
PUBLISH_META = _LEADER + """
if not_leader(ARGV[3] or '') then
  return redis.error_reply('NOTLEADER another DTSentinel leads')
end
redis.call('SELECT', @META_DB@)
local fence = tonumber(redis.call('GET', '@FENCE_KEY@') or '0')
local token = tonumber(ARGV[1])
if token >= fence then
  redis.call('SET', '@FENCE_KEY@', token)
  redis.call('SET', '@RING_KEY@', ARGV[2])
  return token
end
return fence
"""

# Scan one chunk of database 0 and keep the keys whose ring position falls in
# one of the given ranges. ARGV[1] = cursor, ARGV[2] = COUNT, ARGV[3] = "copy"
# (return matching keys and their range index) or "delete" (UNLINK them and
# their versions, and return how many), ARGV[4] = holder id and ARGV[5] = the
# ring token the deletion is judged by (delete only: refused with NOTLEADER,
# or STALERING once a newer ring, which may need the copies, is fenced),
# ARGV[6..] = sorted, non-overlapping ranges as pairs of 40-digit hex
# positions (start, end], each followed by its label: start1, end1, label1,
# start2, ... A wrapping arc is given as two ranges.
# -> {next cursor, key1, label1, key2, label2, ...} or {next cursor, count}.
SCAN_ARCS = _LEADER + """
if ARGV[3] == 'delete' then
  if not_leader(ARGV[4]) then return redis.error_reply('NOTLEADER another DTSentinel leads') end
  redis.call('SELECT', @META_DB@)
  local fence = tonumber(redis.call('GET', '@FENCE_KEY@') or '0')
  redis.call('SELECT', 0)
  if tonumber(ARGV[5]) < fence then return redis.error_reply('STALERING ' .. fence) end
end
local res = redis.call('SCAN', ARGV[1], 'COUNT', ARGV[2])
local out = {res[1]}
local B = 5
local n = (#ARGV - B) / 3
local deleted = 0
local doomed = {}
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
    if ARGV[B + 3 * mid - 1] < pos then lo = mid + 1 else hi = mid end
  end
  if n > 0 and pos <= ARGV[B + 3 * lo - 1] and pos > ARGV[B + 3 * lo - 2] then
    if ARGV[3] == 'delete' then
      deleted = deleted + 1
      doomed[deleted] = key
    else
      out[#out + 1] = key
      out[#out + 1] = ARGV[B + 3 * lo]
    end
  end
end
for first = 1, deleted, @SLICE@ do  -- unpack stops near 8,000 values
  local slice = {}
  for i = first, math.min(first + @SLICE@ - 1, deleted) do slice[#slice + 1] = doomed[i] end
  redis.call('UNLINK', unpack(slice))
  redis.call('SELECT', @VERSION_DB@)
  redis.call('UNLINK', unpack(slice))
  redis.call('SELECT', 0)
end
if ARGV[3] == 'delete' then out[2] = deleted end
return out
"""

# KEYS = keys; -> for each key {type, sha1 of its value, ttl in ms, version},
# so copies can be compared without shipping values.
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
  elseif t == 'stream' then
    -- entries, last ID, and each group's position and pending entries
    -- (not the delivery times, which each copy's clock sets)
    local parts = {}
    for _, e in ipairs(redis.call('XRANGE', key, '-', '+')) do
      parts[#parts + 1] = e[1] .. '\\1' .. table.concat(e[2], '\\1')
    end
    local info = redis.call('XINFO', 'STREAM', key)
    for j = 1, #info, 2 do
      if info[j] == 'last-generated-id' then parts[#parts + 1] = info[j + 1] end
    end
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
      local name, last = '', ''
      for j = 1, #g, 2 do
        if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then
          last = g[j + 1] end
      end
      parts[#parts + 1] = name .. '\\1' .. last
      for _, p in ipairs(redis.call('XPENDING', key, name, '-', '+', 1000000000)) do
        parts[#parts + 1] = p[1] .. '\\1' .. p[2] .. '\\1' .. p[4]
      end
    end
    v = table.concat(parts, '\\0')
  end
  out[i] = {t, redis.sha1hex(v), redis.call('PTTL', key)}
end
redis.call('SELECT', @VERSION_DB@)
for i, key in ipairs(KEYS) do out[i][4] = redis.call('GET', key) or '0' end
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

# Delete a copy that is not where the ring wants it, and its version.
# ARGV[1] = the ring token the caller judged by: refused once a newer ring
# (a migration) is in force, since that ring may need the copy.
DROP = _FENCE + """
redis.call('UNLINK', KEYS[1])
redis.call('SELECT', @VERSION_DB@)
return redis.call('UNLINK', KEYS[1])
"""


# Run a command on copies of keys read from other nodes (a multi-key command
# whose keys do not share copies), in database SCRATCH_DB, which is empty
# outside this script: the copies are restored, the command runs, the
# resulting state of every key is read, and everything is deleted again,
# all in one atomic script. Nothing of database 0 is touched.
# ARGV[1] = n, ARGV[2] = 1 to return the keys' resulting states, then n
# triples (key, serialized value or '', absolute expiry in ms or 0), then the
# command. -> {reply, {value or '', ms to live}...} | the command's error.
SCRATCH = _PRELUDE + """
local n = tonumber(ARGV[1])
redis.call('SELECT', @SCRATCH_DB@)
local keys = {}
for i = 0, n - 1 do
  local k, v, at = ARGV[3 + 3 * i], ARGV[4 + 3 * i], tonumber(ARGV[5 + 3 * i])
  keys[#keys + 1] = k
  redis.call('DEL', k)
  if v ~= '' then
    if at > 0 then redis.call('RESTORE', k, at, v, 'REPLACE', 'ABSTTL')
    else redis.call('RESTORE', k, 0, v, 'REPLACE') end
  end
end
local reply = run(3 + 3 * n)
local out = {reply}
if type(reply) ~= 'table' or not reply.err then
  if ARGV[2] == '1' then
    for _, k in ipairs(keys) do
      out[#out + 1] = {redis.call('DUMP', k) or '', redis.call('PTTL', k)}
    end
  end
end
for _, k in ipairs(keys) do redis.call('DEL', k) end
redis.call('SELECT', 0)
if type(reply) == 'table' and reply.err then return reply end
return out
"""

# FLUSHALL / FLUSHDB on one member: its keyspace, the keys' versions and its
# repair intents. ARGV[1] = ring token (fenced like a write).
FLUSH = _PRELUDE + _FENCE + """
redis.call('FLUSHDB')
redis.call('SELECT', @VERSION_DB@)
redis.call('FLUSHDB')
redis.call('SELECT', @META_DB@)
redis.call('DEL', 'dtriad:dirty')
redis.call('SELECT', 0)
return redis.status_reply('OK')
"""

# ------------------------------------------------------------ transactions
# MULTI/EXEC (core/transactions.py, docs/transactions.md). Shared pieces: a
# new version with repair intents for keys a transaction wrote; the WATCHed
# keys' versions checked; the queued commands read from ARGV.
_TXN = """
local function restamp(keys)
  local prev = versions(keys)
  local top = 0
  for _, v in ipairs(prev) do if v > top then top = v end end
  local version = math.max(top + 1, now_us())
  stamp(keys, version)
  redis.call('SELECT', @META_DB@)
  for _, k in ipairs(keys) do redis.call('ZADD', 'dtriad:dirty', fmt(version), k) end
  redis.call('SELECT', 0)
  return version
end
-- ARGV[at] = W, then W pairs (key, version when WATCHed). -> all unchanged?, next index
local function watched_ok(at)
  local w = tonumber(ARGV[at])
  local keys, want = {}, {}
  for i = 1, w do keys[i] = ARGV[at + 2 * i - 1]; want[i] = ARGV[at + 2 * i] end
  local have = versions(keys)
  for i = 1, w do
    if fmt(have[i]) ~= want[i] then return false, at + 1 + 2 * w end
  end
  return true, at + 1 + 2 * w
end
-- Commands whose integer reply is the key's (or field's) new value, re-read
-- as text when a Lua number cannot hold it.
local COUNTERS = {INCR = true, INCRBY = true, DECR = true, DECRBY = true, HINCRBY = true}
-- ARGV[at] = C, then C commands, each as its argument count and arguments.
-- -> replies, the indexes of integer replies sent as text (see exact())
local function run_all(at, db)
  local c = tonumber(ARGV[at])
  at = at + 1
  local replies, texts = {}, {}
  for i = 1, c do
    local n = tonumber(ARGV[at])
    local args = {}
    for j = 1, n do args[j] = ARGV[at + j] end
    at = at + n + 1
    local reply = call(args, db)
    local counter = COUNTERS[string.upper(args[1])]
    if counter and type(reply) == 'number' and math.abs(reply) >= 9007199254740992 then
      if string.upper(args[1]) == 'HINCRBY' then reply = redis.call('HGET', args[2], args[3])
      else reply = redis.call('GET', args[2]) end
      texts[#texts + 1] = i
    end
    replies[i] = reply
  end
  return replies, texts
end
"""

# A transaction whose keys all share one master, as one step there. KEYS =
# every key it names (the M written ones first), ARGV[1] = ring token, ARGV[2]
# = M, then the WATCHed keys (see watched_ok) and the commands (run_all).
# -> {'ok', new version of the written keys, {reply or error per command},
# {indexes of integer replies sent as text}} |
# {'watch'} (a WATCHed key changed: nothing ran) | DTLOCKED | STALERING.
TXN_ONE = _PRELUDE + _FENCE + _TXN + """
local owner = locked(KEYS)
if owner then return redis.error_reply('DTLOCKED ' .. owner) end
local ok, at = watched_ok(3)
if not ok then return {'watch'} end
local replies, texts = run_all(at, 0)
local written = {}
for i = 1, tonumber(ARGV[2]) do written[i] = KEYS[i] end
local version = 0
if #written > 0 then version = restamp(written) end
return {'ok', fmt(version), replies, texts}
"""

# Lock a cross-node transaction's keys on one of their masters and read their
# states. KEYS = its keys here, ARGV[1] = ring token, ARGV[2] = the owner
# ("txid coordinator started-ms"), ARGV[3] = '1' on the coordinator (create
# the transaction's record, status pending), then the WATCHed keys here.
# -> {'locked', {version, value or '', ms to live} per key} | {'busy', owner}
# | {'watch'}.
TXN_LOCK = _PRELUDE + _FENCE + _TXN + """
local owner = locked(KEYS, ARGV[2])
if owner then return {'busy', owner} end
if not watched_ok(4) then return {'watch'} end
redis.call('SELECT', @META_DB@)
if ARGV[3] == '1' then
  local record = '@TXN_PREFIX@' .. string.match(ARGV[2], '^%S+')
  redis.call('HSET', record, 'status', 'pending')
  redis.call('PEXPIRE', record, 3600000)
end
for _, k in ipairs(KEYS) do redis.call('HSET', '@LOCKS_KEY@', k, ARGV[2]) end
redis.call('SELECT', 0)
local v = versions(KEYS)
local out = {'locked'}
for i, k in ipairs(KEYS) do
  out[i + 1] = {fmt(v[i]), redis.call('DUMP', k) or '', redis.call('PTTL', k)}
end
return out
"""

# Run a cross-node transaction's commands over copies of its keys in database
# SCRATCH_DB (empty outside this script). ARGV[1] = n, n triples (key, value
# or '', absolute expiry in ms or 0), M (the first M keys are written), then
# the commands. -> {{reply or error per command}, {value or '', absolute
# expiry or 0} per written key, {indexes of integer replies sent as text}}.
TXN_SCRATCH = _PRELUDE + _TXN + """
local n = tonumber(ARGV[1])
redis.call('SELECT', @SCRATCH_DB@)
local keys = {}
for i = 0, n - 1 do
  local k, v, at = ARGV[2 + 3 * i], ARGV[3 + 3 * i], tonumber(ARGV[4 + 3 * i])
  keys[#keys + 1] = k
  redis.call('DEL', k)
  if v ~= '' then
    if at > 0 then redis.call('RESTORE', k, at, v, 'REPLACE', 'ABSTTL')
    else redis.call('RESTORE', k, 0, v, 'REPLACE') end
  end
end
local m = tonumber(ARGV[2 + 3 * n])
local replies, texts = run_all(3 + 3 * n, @SCRATCH_DB@)
redis.call('SELECT', @SCRATCH_DB@)
local now = math.floor(now_us() / 1000)
local states = {}
for i = 1, m do
  local ttl = redis.call('PTTL', keys[i])
  local at = 0
  if ttl > 0 then at = now + ttl end
  states[i] = {redis.call('DUMP', keys[i]) or '', at}
end
for _, k in ipairs(keys) do redis.call('DEL', k) end
redis.call('SELECT', 0)
return {replies, states, texts}
"""

# The commit point, on the coordinator: ARGV[1] = txid, then triples (key,
# value or '', absolute expiry or 0) of every key it writes. Commits only a
# pending transaction (a stale one's resolver may have aborted it first).
# -> 'commit' | 'abort' | 'missing'.
TXN_COMMIT = """
redis.call('SELECT', @META_DB@)
local record = '@TXN_PREFIX@' .. ARGV[1]
local status = redis.call('HGET', record, 'status')
if status ~= 'pending' then return status or 'missing' end
for i = 2, #ARGV, 3 do
  redis.call('HSET', record, 'v:' .. ARGV[i], ARGV[i + 1], 't:' .. ARGV[i], ARGV[i + 2])
end
redis.call('HSET', record, 'status', 'commit')
return 'commit'
"""

# A lock's owner is gone (its DTServer died, or it is slow): decide for it,
# on the coordinator. A pending transaction is aborted (it can no longer
# commit); a committed one is finished. ARGV[1] = txid, ARGV[2..] = keys.
# -> {'abort'} | {'commit', {1, value, expiry} or {0} per key}.
TXN_RESOLVE = """
redis.call('SELECT', @META_DB@)
local record = '@TXN_PREFIX@' .. ARGV[1]
local status = redis.call('HGET', record, 'status')
if status ~= 'commit' then
  redis.call('HSET', record, 'status', 'abort')
  redis.call('PEXPIRE', record, 3600000)
  return {'abort'}
end
local out = {}
for i = 2, #ARGV do
  local v = redis.call('HGET', record, 'v:' .. ARGV[i])
  if v then out[i - 1] = {1, v, redis.call('HGET', record, 't:' .. ARGV[i])}
  else out[i - 1] = {0} end
end
return {'commit', out}
"""

# Apply a committed transaction's part on one master and unlock its keys, if
# the lock is still this transaction's (else it was applied already). KEYS =
# the keys locked here (the M written first), ARGV[1] = owner, ARGV[2] = ring
# token, ARGV[3] = M, then M pairs (value or '', absolute expiry or 0).
# -> {version, applied}.
TXN_APPLY = _PRELUDE + _TXN + """
redis.call('SELECT', @META_DB@)
if not redis.call('GET', '@FENCE_KEY@') and tonumber(ARGV[2]) > 0 then
  -- restarted empty: its locks are gone too
  return redis.error_reply("NOTADMITTED this backend lost its data; the transaction's " ..
    'part here is in doubt')
end
local mine = {}
for i, k in ipairs(KEYS) do mine[i] = redis.call('HGET', '@LOCKS_KEY@', k) == ARGV[1] end
redis.call('SELECT', 0)
local written = {}
for i = 1, tonumber(ARGV[3]) do
  if mine[i] then
    local v, at = ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
    if v == '' then redis.call('DEL', KEYS[i])
    elseif at > 0 then redis.call('RESTORE', KEYS[i], at, v, 'REPLACE', 'ABSTTL')
    else redis.call('RESTORE', KEYS[i], 0, v, 'REPLACE') end
    written[#written + 1] = KEYS[i]
  end
end
local version = 0
if #written > 0 then version = restamp(written) end
redis.call('SELECT', @META_DB@)
for i, k in ipairs(KEYS) do
  if mine[i] then redis.call('HDEL', '@LOCKS_KEY@', k) end
end
redis.call('SELECT', 0)
return {fmt(version), #written}
"""

# Unlock KEYS if ARGV[1] (the owner) still holds them. -> how many.
TXN_UNLOCK = """
redis.call('SELECT', @META_DB@)
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('HGET', '@LOCKS_KEY@', k) == ARGV[1] then
    n = n + redis.call('HDEL', '@LOCKS_KEY@', k)
  end
end
return n
"""

# KEYS -> their versions (WATCH).
VERSIONS = _PRELUDE + """
local out = {}
for i, v in ipairs(versions(KEYS)) do out[i] = fmt(v) end
return out
"""

# Forget a transaction's record if it is still pending (its owner released
# its locks before the commit point). ARGV[1] = txid.
TXN_DROP = """
redis.call('SELECT', @META_DB@)
local record = '@TXN_PREFIX@' .. ARGV[1]
if redis.call('HGET', record, 'status') == 'pending' then redis.call('DEL', record) end
return 1
"""

# Every lock on this backend: {key1, owner1, ...}.
TXN_LOCKS = """
redis.call('SELECT', @META_DB@)
return redis.call('HGETALL', '@LOCKS_KEY@')
"""


def _fill(script: str) -> str:
    """The constants above, put in the Lua where it says ``@NAME@``."""
    for name, value in (("META_DB", META_DB), ("VERSION_DB", VERSION_DB),
                        ("SCRATCH_DB", SCRATCH_DB), ("FENCE_KEY", FENCE_KEY),
                        ("RING_KEY", RING_KEY), ("LOCKS_KEY", LOCKS_KEY),
                        ("TXN_PREFIX", TXN_PREFIX), ("SLICE", SLICE), ("UNPACK", UNPACK),
                        ("TOMBSTONE_MS", TOMBSTONE_MS)):
        script = script.replace(f"@{name}@", str(value))
    if "@" in script:
        raise RuntimeError(f"a placeholder of scripts.py was not filled: {script!r}")
    return script


LEASE = _fill(LEASE)
RELEASE = _fill(RELEASE)
WRITE_MASTER = _fill(WRITE_MASTER)
WRITE_MASTER_IF = _fill(WRITE_MASTER_IF)
SCRATCH = _fill(SCRATCH)
FLUSH = _fill(FLUSH)
WRITE_BACKUP = _fill(WRITE_BACKUP)
CLEAN = _fill(CLEAN)
SWEEP = _fill(SWEEP)
STATE = _fill(STATE)
INSTALL = _fill(INSTALL)
BUMP = _fill(BUMP)
READ_VERSIONED = _fill(READ_VERSIONED)
WIPE = _fill(WIPE)
READ_META = _fill(READ_META)
FENCE_ONLY = _fill(FENCE_ONLY)
PUBLISH_META = _fill(PUBLISH_META)
SCAN_ARCS = _fill(SCAN_ARCS)
DIGEST = _fill(DIGEST)
DROP = _fill(DROP)
TXN_ONE = _fill(TXN_ONE)
TXN_LOCK = _fill(TXN_LOCK)
TXN_SCRATCH = _fill(TXN_SCRATCH)
TXN_COMMIT = _fill(TXN_COMMIT)
TXN_RESOLVE = _fill(TXN_RESOLVE)
TXN_APPLY = _fill(TXN_APPLY)
TXN_UNLOCK = _fill(TXN_UNLOCK)
TXN_LOCKS = _fill(TXN_LOCKS)
VERSIONS = _fill(VERSIONS)
STATES = _fill(STATES)
INSTALL_MANY = _fill(INSTALL_MANY)
TXN_DROP = _fill(TXN_DROP)
