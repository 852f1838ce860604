"""EVAL, EVALSHA and SCRIPT: users' Lua scripts, run on the master of their keys.

How a script runs (:meth:`UserScripts.command`):

* **Where.** Every key a script declares (``EVAL src numkeys k1 k2 ...``) must
  have the same master (``View.route(key).direct[0]``; keys sharing a
  ``{hash tag}`` always do). The script runs there, once, atomically, inside
  :data:`WRAPPER`. Keys on different masters are refused (``CROSSNODE``,
  naming the keys and their nodes): a script cannot be atomic across
  backends (the cross-node transaction mechanism could run it one day). A
  script with no keys runs on the first member that answers and may touch
  no key.
* **Its effect, not a second run.** The wrapper records every key a write
  command of the script named; afterwards (also after a script that failed
  midway: Redis does not roll back a script's earlier writes) each of them
  gets a new version ``max(previous + 1, now in µs)`` and a repair intent
  (``dtriad:dirty``), exactly as ``WRITE_MASTER`` does. The DTServer then
  gives every backup and every copy gaining the key in a migration the
  master's resulting state (``Requests._sync``), checks the write quorum,
  and clears the intent. A script with SPOP, SRANDMEMBER or TIME therefore
  leaves every copy identical; a DTServer that dies in between leaves the
  intent for any DTServer's sweep.
* **Before running** the wrapper checks the ring fence (``STALERING``: route
  again, as :meth:`Requests.write` does) and the locks of cross-node
  transactions (``DTLOCKED``: wait for the transaction).
* **Replies** are converted as Redis converts Lua values (status and error
  tables, ``false`` is nil, numbers truncated to integers, tables cut at the
  first nil), then tagged so the status/bulk/error distinction survives the
  hop from the backend: a status reply comes back as :class:`Status`, an
  error inside an array as :class:`ErrorReply` (both ``bytes``; the RESP
  encoder writes them as ``+...`` and ``-...``).
* **The script cache** is cluster-wide: ``dtriad:scripts`` in database 1 of
  every member (sha1 -> source). ``SCRIPT LOAD`` and an ``EVAL`` whose script
  its master did not know yet store it on every member; ``EVALSHA`` sends
  only the sha and the wrapper reads the source on the master (``NOSCRIPT
  No matching script. Please use EVAL.`` if no member has it; a master that
  joined later is given it from another member). ``SCRIPT FLUSH`` empties it
  on every member, ``SCRIPT EXISTS`` asks every member. So redis-py's
  ``register_script`` works through any DTServer.

The sandbox (Lua 5.1 in Redis has no ``setfenv`` in 7.0, so it is lexical):
the user's source is compiled by the wrapper with ``loadstring`` as a chunk
of its own named ``@user_script`` (so error positions read as Redis's),
prefixed on its first line (its line numbers stay intact) by
:data:`PROLOGUE`, which binds as locals: ``redis`` to a guarded table,
``KEYS`` and ``ARGV`` to the user's own, and ``_G``, ``getfenv``,
``setfenv``, ``loadstring``, ``load``, ``rawget``, ``rawset``,
``getmetatable``, ``setmetatable``, ``newproxy`` and the error handler to
nil or to versions that refuse Lua's own tables. Being a separate chunk,
the user's code cannot name the wrapper's locals (the real ``redis``), and
cannot close the wrapper's blocks early (it compiles on its own). Redis
itself makes the global and library tables read-only (both 6.2 and 7.0
here), so the user's code cannot change what the wrapper calls.
``redis.call``/``redis.pcall`` of the guarded table check, before calling
Redis, in Redis 6.2's order and words: at least one argument, strings or
numbers only, the command (:data:`ALLOWED`: the data commands of the
command table, with TIME, PING and ECHO), its arity; then every key
argument (positions from the command table's key specs; ZUNIONSTORE, XREAD,
SORT ... STORE, GEORADIUS ... STORE, STRALGO, OBJECT, XINFO, XGROUP and
MEMORY parsed as Redis finds their keys) must be one of the declared KEYS.
Refused: SELECT, SWAPDB, MOVE and COPY ... DB (a script runs in database 0
only, so databases 1-3, where dtriad keeps rings, versions, intents, locks
and this cache, are out of reach); SORT with BY or GET patterns (they read
undeclared keys); KEYS, SCAN, RANDOMKEY, FLUSHALL, FLUSHDB, CONFIG, DEBUG,
CLIENT, INFO, PUBLISH and every other command outside the table; Redis's
own ``noscript`` commands (EVAL, SCRIPT, MULTI, blocking pops, SUBSCRIBE)
get Redis's own error. ``redis.set_repl`` is a no-op (dtriad copies the
effect itself) and ``redis.setresp(3)`` is refused (replies are converted
as RESP2).

What it does not stop: a script that loops forever blocks its master
backend (every key of that node) until Redis's ``lua-time-limit`` makes it
answer BUSY, and only an operator's ``SCRIPT KILL`` on that backend ends it
(dtriad does not serve SCRIPT KILL); a script can grow values up to the
backend's ``maxmemory``, and ``redis.log`` writes to the backend's log. A
RESTORE payload crafted by hand reaches the backend as it does through the
plain command path. The sandbox is what stands between a client and the
backends: the client password opens no backend (docs/architecture.md
section 8), so a script is the only way a client's code runs there.

Known differences from Redis 6.2: an error raised by ``redis.call`` in a
tail call (``return redis.call(...)``) reports its line as ``?`` (the Lua
guard has no caller frame left); ``error({err = 'x'})`` answers ``x`` (as
Redis 7 does; 6.2 fails in its own error handler); the user's chunk may use
``...`` (the guard's arguments); SCRIPT KILL and SCRIPT DEBUG are refused.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from dtriad.backends.outcome import DOWN_ERRORS, Execute, Fanout, Pause, Steps, describe
from dtriad.config import WriteQuorum
from dtriad.core import steps
from dtriad.core.commands import REDIS, REDIS62, Kind, RedisCommand
from dtriad.core.scripts import _FENCE, _PRELUDE, _TXN, META_DB, SCRATCH_DB, _fill
from dtriad.core.transactions import Locked, Retry, is_locked, scratch_states
from dtriad.exceptions import (
    CommandError,
    RingChangingError,
    UnavailableError,
    printable,
)

if TYPE_CHECKING:
    from dtriad.core.requests import Requests
    from dtriad.placement.ringstate import View

SCRIPTS_KEY = "dtriad:scripts"  # database 1 of every member: sha1 -> source
NOSCRIPT = "NOSCRIPT No matching script. Please use EVAL."


class Status(bytes):
    """A status reply (``+OK``) in a script's reply, as Redis sends it."""

    resp_prefix = b"+"  # how frontends/resp.py's encode writes it


class ErrorReply(bytes):
    """An error reply nested in a script's array reply (``-ERR ...``)."""

    resp_prefix = b"-"


# -- the allow-list, generated from the command table ----------------------

# Commands whose keys are not at fixed positions: how the guard finds them.
_MOVABLE = {"zunionstore": "zstore", "zinterstore": "zstore", "zdiffstore": "zstore",
            "zunion": "znum", "zinter": "znum", "zdiff": "znum",
            "xread": "xread", "xreadgroup": "xread", "sort": "sort", "sort_ro": "sort",
            "georadius": "geo", "georadiusbymember": "geo", "stralgo": "stralgo",
            "object": "sub", "xinfo": "sub", "xgroup": "sub", "memory": "memory"}
_EXTRA = ("time", "ping", "echo")  # keyless, harmless, common in scripts
_DATABASES = ("select", "swapdb", "move")


def _allowed() -> dict[str, tuple[int, int, int, int, bool, str]]:
    """name -> (arity, first key, last key, step, writes, movable mode)."""
    out = {}
    for spec in REDIS.values():
        if spec.kind in (Kind.READ, Kind.WRITE) or spec.name in _EXTRA:
            row = REDIS62[spec.name]
            writes = spec.kind is Kind.WRITE or spec.name == "pfcount"  # PFCOUNT caches
            out[spec.name.upper()] = (row[0], row[2], row[3], row[4], writes,
                                      _MOVABLE.get(spec.name, ""))
    return out


ALLOWED = _allowed()


def _refusal(name: str) -> str:
    if "noscript" in REDIS62[name][1]:
        return "noscript"  # Redis's own words
    if name in _DATABASES:
        return (f"dtriad: {name.upper()} is refused in scripts: a script runs in "
                f"database 0 only")
    if name == "publish":
        return "dtriad: PUBLISH is not served in scripts: publish from the client"
    return (f"dtriad: {name.upper()} is not served in scripts: a script may run only the "
            f"data commands dtriad serves, on the keys it declares")


REFUSED = {name.upper(): _refusal(name) for name in REDIS62 if name.upper() not in ALLOWED}


def _lua(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _table(rows: dict[str, Any]) -> str:
    def item(v: Any) -> str:
        return "{" + ", ".join(_lua(x) for x in v) + "}" if isinstance(v, tuple) else _lua(v)
    return "{" + ", ".join(f"[{_lua(k)}] = {item(v)}" for k, v in sorted(rows.items())) + "}"


# The line put before the user's source (on its first line, so its line
# numbers stay): the user's chunk gets these names as locals from the
# wrapper's call, and everything else it names is the global environment.
PROLOGUE = ("local redis, KEYS, ARGV, getmetatable, setmetatable, rawget, rawset, _G, "
            "getfenv, setfenv, loadstring, load, newproxy, __redis__err__handler = ...; ")

# KEYS = the script's declared keys. ARGV[1] = ring token, ARGV[2] = the
# user's sha1, ARGV[3] = its source ('' = read it from dtriad:scripts here),
# ARGV[4] = mode: 'run', 'store' (run, and keep the source if new here),
# 'load' (compile and keep it only) or 'scratch' (a script whose keys span
# nodes, under a transaction's locks: ARGV[5] = n, then the n keys' states
# as (value or '', absolute expiry in ms or 0); it runs over copies of them
# in database SCRATCH_DB, and keeps the source if new here), then the user's ARGV.
# -> {'compile', message} | {'loaded', 1 if new here} |
#    {'ok' | 'err', tagged reply or message, version or '0' (scratch: the
#    written keys' states {value or '', absolute expiry or 0}), 1 if the
#    source is new here, written key...}
_BODY = r"""
local sha, source, mode = ARGV[2], ARGV[3], ARGV[4]
local scratch = mode == 'scratch'
if not scratch then  -- in scratch mode the caller holds the keys' locks itself
  local owner = locked(KEYS)
  if owner then return redis.error_reply('DTLOCKED ' .. owner) end
end
if source == '' then
  redis.call('SELECT', @META_DB@)
  source = redis.call('HGET', '@SCRIPTS_KEY@', sha)
  redis.call('SELECT', 0)
  if not source then return redis.error_reply('@NOSCRIPT@') end
end
local fn, problem = loadstring('@PROLOGUE@' .. source, '@user_script')
if not fn then return {'compile', problem} end
local fresh = 0
if mode ~= 'run' then
  redis.call('SELECT', @META_DB@)
  fresh = redis.call('HSETNX', '@SCRIPTS_KEY@', sha, source)
  redis.call('SELECT', 0)
  if mode == 'load' then return {'loaded', fresh} end
end

local ALLOWED = @ALLOWED@
local REFUSED = @REFUSED@
local upper, find, match, sfmt = string.upper, string.find, string.match, string.format
local real_pcall, select_, type_, error_, pcall_, tostring_ = redis.pcall, select, type,
  error, pcall, tostring
local user_keys, user_args, declared = {}, {}, {}
for i, k in ipairs(KEYS) do user_keys[i] = k; declared[k] = true end
local first_arg, db = 5, 0
if scratch then
  local n = tonumber(ARGV[5])
  redis.call('SELECT', @SCRATCH_DB@)
  for i = 1, n do
    local k, v, at = KEYS[i], ARGV[4 + 2 * i], tonumber(ARGV[5 + 2 * i])
    redis.call('DEL', k)
    if v ~= '' then
      if at > 0 then redis.call('RESTORE', k, at, v, 'REPLACE', 'ABSTTL')
      else redis.call('RESTORE', k, 0, v, 'REPLACE') end
    end
  end
  first_arg, db = 6 + 2 * n, @SCRATCH_DB@
end
for i = first_arg, #ARGV do user_args[#user_args + 1] = ARGV[i] end
local written, order = {}, {}
local lasterr, lastline

-- The line of the user's code that named redis.call or redis.pcall (level
-- 5: locate <- pcall <- where <- the guarded table's __index <- the user's
-- function), taken when it names it: the guard itself may be tail-called
-- (return redis.call(...)), which leaves no frame of the user's to find.
local function locate() error_('', 5) end
local function where()
  local _, w = pcall_(locate)
  return match(tostring_(w), '^user_script:(%d+): $') or '?'
end
local function str(v)
  if type_(v) == 'number' then return sfmt('%.17g', v) end
  return v
end
local function sort_keys(args, n, out, sortlike)
  out[#out + 1] = str(args[2])
  local i = 3
  while i <= n do
    local word = upper(str(args[i]))
    if sortlike and (word == 'BY' or word == 'GET') and i < n then
      local pattern = str(args[i + 1])
      if (word == 'BY' and find(pattern, '*', 1, true)) or (word == 'GET' and pattern ~= '#') then
        return 'dtriad: SORT ... BY/GET patterns read keys the script did not declare; '
          .. 'they are not served in scripts'
      end
      i = i + 2
    elseif sortlike and word == 'LIMIT' then i = i + 3
    elseif (word == 'STORE' or (word == 'STOREDIST' and not sortlike)) and i < n then
      out[#out + 1] = str(args[i + 1])
      i = i + 2
    else i = i + 1 end
  end
end
-- The keys of one command as Redis finds them, or a refusal.
local function keys_of(name, spec, args, n)
  local out, mode = {}, spec[6]
  if mode == '' then
    local first, last, step = spec[2], spec[3], spec[4]
    if first == 0 then return out end
    if last < 0 then last = n + last + 1 else last = last + 1 end
    for i = first + 1, last, step do out[#out + 1] = str(args[i]) end
  elseif mode == 'zstore' or mode == 'znum' then
    local at = (mode == 'zstore') and 3 or 2
    if mode == 'zstore' then out[1] = str(args[2]) end
    local count = tonumber(args[at])
    if count and count > 0 then
      for i = at + 1, math.min(at + count, n) do out[#out + 1] = str(args[i]) end
    end
  elseif mode == 'xread' then
    local i = 2  -- the options as Redis reads them (commands.streams_at)
    while i <= n do
      local word = upper(str(args[i]))
      if word == 'STREAMS' then
        for j = i + 1, i + math.floor((n - i) / 2) do out[#out + 1] = str(args[j]) end
        break
      end
      if word == 'COUNT' or word == 'BLOCK' then i = i + 2
      elseif word == 'GROUP' and name == 'XREADGROUP' then i = i + 3
      else i = i + 1 end
    end
  elseif mode == 'sort' or mode == 'geo' then
    local refused = sort_keys(args, n, out, mode == 'sort' and name ~= 'SORT_RO')
    if refused then return nil, refused end
    if name == 'SORT_RO' then out = {str(args[2])} end
  elseif mode == 'stralgo' then
    for i = 3, n - 2 do
      if upper(str(args[i])) == 'KEYS' then
        out[1], out[2] = str(args[i + 1]), str(args[i + 2])
        break
      end
    end
  elseif mode == 'sub' then
    if n > 2 and upper(str(args[2])) ~= 'HELP' then out[1] = str(args[3]) end
  elseif mode == 'memory' then
    if n > 2 and upper(str(args[2])) == 'USAGE' then out[1] = str(args[3]) end
  end
  return out
end
-- Why the command may not run (Redis 6.2's words for what Redis refuses), or nil.
local function check(...)
  local n = select_('#', ...)
  if n == 0 then return 'Please specify at least one argument for redis.call()' end
  local args = {...}
  for i = 1, n do
    local t = type_(args[i])
    if t ~= 'string' and t ~= 'number' then
      return 'Lua redis() command arguments must be strings or integers'
    end
  end
  local name = upper(str(args[1]))
  local spec = ALLOWED[name]
  if not spec then
    local why = REFUSED[name]
    if why == nil then return 'Unknown Redis command called from Lua script' end
    if why == 'noscript' then return 'This Redis command is not allowed from scripts' end
    return why
  end
  local arity = spec[1]
  if (arity > 0 and n ~= arity) or (arity < 0 and n < -arity) then
    return 'Wrong number of args calling Redis command From Lua script'
  end
  if name == 'COPY' then
    for i = 4, n do
      if upper(str(args[i])) == 'DB' then
        return 'dtriad: COPY ... DB is refused in scripts: a script runs in database 0 only'
      end
    end
  end
  local keys, refused = keys_of(name, spec, args, n)
  if refused then return refused end
  for _, k in ipairs(keys) do
    if not declared[k] then
      return "dtriad: the script used key '" .. k .. "', which it did not declare; "
        .. 'pass every key a script touches in KEYS (numkeys), which routes it to '
        .. "the keys' node"
    end
  end
  if spec[5] then
    for _, k in ipairs(keys) do
      if not written[k] then written[k] = true; order[#order + 1] = k end
    end
  end
  return nil, name, n
end
local function execute(name, n, ...)
  if name == 'INCRBYFLOAT' and n == 3 then  -- see run() in the prelude
    local args = {...}
    return incrbyfloat(args[2], args[3], db)
  end
  return real_pcall(...)
end
local named = '?'  -- the line that last named redis.call / redis.pcall
local function guarded_call(...)
  local at = named
  local problem, name, n = check(...)
  if problem then
    lasterr, lastline = '@user_script: ' .. at .. ': ' .. problem, at
    error_(lasterr, 0)
  end
  local reply = execute(name, n, ...)
  if type_(reply) == 'table' and type_(reply.err) == 'string' then
    lasterr, lastline = reply.err, at
    error_(lasterr, 0)
  end
  return reply
end
local function guarded_pcall(...)
  local at = named
  local problem, name, n = check(...)
  if problem then return {err = '@user_script: ' .. at .. ': ' .. problem} end
  local reply = execute(name, n, ...)
  return reply
end
local entries = {call = guarded_call, pcall = guarded_pcall}
local guarded = {
  status_reply = redis.status_reply,
  error_reply = redis.error_reply, sha1hex = redis.sha1hex, log = redis.log,
  breakpoint = redis.breakpoint, debug = redis.debug,
  replicate_commands = function() return true end,
  set_repl = function() end,  -- dtriad copies the script's effect itself
  setresp = function(v)
    if tonumber(v) ~= 2 then
      error_('dtriad: redis.setresp(3) is not served: replies are converted as RESP2', 2)
    end
  end,
}
for k, v in pairs(redis) do
  if type_(v) == 'number' and not find(k, '^REDIS_') then guarded[k] = v end
end
setmetatable(guarded, {__index = function(_, name)
  local entry = entries[name]
  if entry then named = where() end
  return entry
end})
local LIBS = {[string] = true, [table] = true, [math] = true, [coroutine] = true,
              [guarded] = true, [user_keys] = true, [user_args] = true}
for _, name in ipairs({'cjson', 'bit', 'struct', 'cmsgpack'}) do
  local lib = rawget(_G, name)
  if lib then LIBS[lib] = true end
end
local function own(t) return type_(t) == 'table' and not LIBS[t] end
local function refuse(what)
  error_('dtriad: ' .. what .. ' is refused on this table in scripts', 3)
end
local safe_getmetatable = function(t) if own(t) then return getmetatable(t) end return nil end
local safe_setmetatable = function(t, m)
  if not own(t) then refuse('setmetatable') end
  return setmetatable(t, m)
end
local safe_rawget = function(t, k) if not own(t) then refuse('rawget') end return rawget(t, k) end
local safe_rawset = function(t, k, v)
  if not own(t) then refuse('rawset') end
  return rawset(t, k, v)
end

-- Redis's conversion of a Lua value to a reply, tagged: a status is {'+', s},
-- an error {'-', s}, an array {'*', items...}; strings and numbers as they are.
local function tag(v)
  local t = type_(v)
  if t == 'string' or t == 'number' then return v end
  if t == 'boolean' then if v then return 1 end return false end
  if t == 'table' then
    if type_(v.err) == 'string' then return {'-', v.err} end
    if type_(v.ok) == 'string' then return {'+', v.ok} end
    if type_(v.double) == 'number' then return sfmt('%.17g', v.double) end
    local out, i = {'*'}, 1
    while v[i] ~= nil do out[i + 1] = tag(v[i]); i = i + 1 end
    return out
  end
  return false
end

local ok, result = pcall_(fn, guarded, user_keys, user_args, safe_getmetatable,
                          safe_setmetatable, safe_rawget, safe_rawset)
local out
if ok then
  local converted, tagged = pcall_(tag, result)
  if converted then out = {'ok', tagged}
  else out = {'err', '@user_script:?: ' .. tostring_(tagged)} end
else
  local e = result
  if type_(e) == 'table' and type_(e.err) == 'string' then e = e.err end
  e = tostring_(e)
  local at
  if lasterr ~= nil and e == lasterr then at = lastline
  else at = match(e, '^user_script:(%d+): ') or '?' end
  out = {'err', '@user_script:' .. at .. ': ' .. e}
end
out[3], out[4] = '0', fresh
if scratch then  -- the written keys' states; database SCRATCH_DB left empty
  local now, states = math.floor(now_us() / 1000), {}
  for i, k in ipairs(order) do
    local ttl = redis.call('PTTL', k)
    local at = 0
    if ttl > 0 then at = now + ttl end
    states[i] = {redis.call('DUMP', k) or '', at}
  end
  for _, k in ipairs(KEYS) do redis.call('DEL', k) end
  redis.call('SELECT', 0)
  out[3] = states
  for _, k in ipairs(order) do out[#out + 1] = k end
elseif #order > 0 then
  out[3] = fmt(restamp(order))  -- new version and repair intents, as a transaction's
  for _, k in ipairs(order) do out[#out + 1] = k end
end
return out
"""


def _wrapper() -> str:
    body = _BODY
    for name, value in (("META_DB", str(META_DB)), ("SCRATCH_DB", str(SCRATCH_DB)),
                        ("SCRIPTS_KEY", SCRIPTS_KEY),
                        ("NOSCRIPT", NOSCRIPT), ("PROLOGUE", PROLOGUE),
                        ("ALLOWED", _table(ALLOWED)), ("REFUSED", _table(REFUSED))):
        body = body.replace(f"@{name}@", value)
    return _fill(_PRELUDE + _FENCE + _TXN) + body


WRAPPER = _wrapper()

# Every member: ARGV[1] = sha1, ARGV[2] = source. -> 1 if new there.
STORE = f"""
redis.call('SELECT', {META_DB})
return redis.call('HSETNX', '{SCRIPTS_KEY}', ARGV[1], ARGV[2])
"""
# ARGV[1] = sha1 -> its source, or nil.
SOURCE = f"""
redis.call('SELECT', {META_DB})
return redis.call('HGET', '{SCRIPTS_KEY}', ARGV[1])
"""
# ARGV = sha1s -> {1 or 0 each}.
EXISTS = f"""
redis.call('SELECT', {META_DB})
local out = {{}}
for i, sha in ipairs(ARGV) do out[i] = redis.call('HEXISTS', '{SCRIPTS_KEY}', sha) end
return out
"""
FLUSH = f"""
redis.call('SELECT', {META_DB})
return redis.call('DEL', '{SCRIPTS_KEY}')
"""


def sha1(source: Any) -> str:
    """The sha1 Redis names a script by: of its bytes, in lower-case hex."""
    data = source.encode("utf-8") if isinstance(source, str) else bytes(source)
    return hashlib.sha1(data).hexdigest()


def decode(value: Any) -> Any:
    """A tagged reply of :data:`WRAPPER` as a raw reply (:class:`Status`, :class:`ErrorReply`)."""
    if isinstance(value, list):
        if value and value[0] == b"+":
            return Status(value[1])
        if value and value[0] == b"-":
            return ErrorReply(value[1])
        return [decode(v) for v in value[1:]]
    return value


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def error_of(message: str) -> CommandError:
    """A script's error reply, sent as it is (its first word is its code)."""
    return CommandError(message, message.split(" ", 1)[0])


def numkeys(argv: Sequence[Any]) -> int:
    """EVAL's numkeys, with Redis's errors."""
    try:
        count = int(_text(argv[2]))
    except ValueError:
        raise CommandError("ERR value is not an integer or out of range") from None
    if count > len(argv) - 3:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    if count < 0:
        raise CommandError("ERR Number of keys can't be negative")
    return count


class _Stale(Exception):
    """The fence says our ring is old: route again."""


class _NoScript(Exception):
    """The node the script was sent to does not know its sha."""


class UserScripts:
    """EVAL, EVALSHA and SCRIPT for :class:`~dtriad.core.requests.Requests`."""

    def __init__(self, requests: Requests):
        self.requests = requests

    def command(self, spec: RedisCommand, argv: Sequence[Any], level: WriteQuorum) -> Steps:
        if spec.name == "script":
            return (yield from self.script(argv))
        count = numkeys(argv)
        keys, args = list(argv[3:3 + count]), list(argv[3 + count:])
        if spec.name == "eval":
            return (yield from self.run(sha1(argv[1]), argv[1], keys, args, level))
        sha = _text(argv[1]).lower()
        try:
            return (yield from self.run(sha, "", keys, args, level, mode="run"))
        except _NoScript:
            source = yield from self.find(sha)
            if source is None:
                raise CommandError(NOSCRIPT, "NOSCRIPT") from None
            return (yield from self.run(sha, source, keys, args, level))

    # ------------------------------------------------------------ running
    def run(self, sha: str, source: Any, keys: list[Any], args: list[Any],
            level: WriteQuorum, mode: str = "store", attempts: int = 8) -> Steps:
        """Run (or, ``mode`` 'load', compile and keep) a script, routing it
        again while the ring moves and waiting for transactions' locks, as
        :meth:`Requests.write` does."""
        requests = self.requests
        attempt, since = 0, time.monotonic()
        while attempt < attempts:
            view = yield from requests.follower.follow()
            try:
                if mode != "load" and len({view.route(k).direct[0] for k in keys}) > 1:
                    return (yield from self._across(view, sha, source, keys, args, level))
                reply, node = yield from self._once(view, sha, source, keys, args, mode)
            except Locked as e:
                yield from requests.transactions.wait(e, since)
                continue
            except (_Stale, Retry):
                if not (yield from requests.follower.refresh()) and attempt + 1 < attempts:
                    yield Pause(min(0.2, 0.01 * 2 ** attempt))
                attempt += 1
                continue
            return (yield from self._finish(view, sha, source, node, reply, level))
        raise RingChangingError(f"the ring changed {attempts} times while running script "
                                f"{sha}; retry")

    def _node(self, view: View, keys: list[Any]) -> tuple[str, ...]:
        """The nodes to try, in order: the keys' one master, or every member."""
        if not keys:
            return tuple(sorted(view.ring.nodes, key=self.requests.suspects.suspected))
        return (view.route(keys[0]).direct[0],)

    def _across(self, view: View, sha: str, source: Any, keys: list[Any], args: list[Any],
                level: WriteQuorum) -> Steps:
        """A script whose keys have several masters, under the transaction
        protocol (``docs/transactions.md``): its keys locked on their masters,
        the script run once over copies of them in the coordinator's scratch
        database, the keys it wrote committed and applied on their masters."""

        def compute(coordinator: str, states: dict[Any, tuple]) -> Steps:
            triples = scratch_states(keys, states)
            current = {triples[i]: tuple(triples[i + 1:i + 3])
                       for i in range(0, len(triples), 3)}
            return (yield from self.scratch(view, coordinator, sha, source, keys, args,
                                            current))

        reply = yield from self.requests.transactions.across(view, keys, {}, compute, level)
        return (yield from self._finish(view, sha, source, None, reply, level))

    def scratch(self, view: View, coordinator: str, sha: str, source: Any, keys: list[Any],
                args: list[Any], current: dict[Any, tuple]) -> Steps:
        """Run a script once over copies of its keys' states ``current``
        ({key: (value or '', absolute expiry or 0)}) in ``coordinator``'s
        scratch database, under a transaction's locks. -> (the wrapper's
        reply, {written key: its new (value, expiry)})."""
        pairs = [x for key in keys for x in current[key]]
        try:
            reply = yield Execute(coordinator, (
                "EVAL", WRAPPER, len(keys), *keys, view.token, sha, source, "scratch",
                len(keys), *pairs, *args))
        except ResponseError as e:
            if str(e).startswith("STALERING"):
                raise _Stale from e
            if str(e).startswith("NOSCRIPT"):
                raise _NoScript from e
            raise CommandError.from_redis(e) from e
        if reply[0] == b"compile":
            raise CommandError(f"ERR Error compiling script (new function): "
                               f"{_text(reply[1])}")
        written = reply[4:]
        return reply, dict(zip(written, (tuple(x) for x in reply[2]), strict=True))

    def in_transaction(self, view: View, coordinator: str, argv: Sequence[Any],
                       current: dict[Any, tuple]) -> Steps:
        """EVAL or EVALSHA ``argv`` inside MULTI, over the transaction's
        current states (updated in place). -> its reply, or the
        :class:`CommandError` EXEC answers in its place, and the keys it wrote."""
        count = numkeys(argv)
        keys, args = list(argv[3:3 + count]), list(argv[3 + count:])
        if _text(argv[0]).lower() == "eval":
            sha, source = sha1(argv[1]), argv[1]
        else:
            sha, source = _text(argv[1]).lower(), ""
        after: dict[Any, tuple] = {}
        try:
            try:
                reply, after = yield from self.scratch(view, coordinator, sha, source, keys,
                                                       args, current)
            except _NoScript:
                source = yield from self.find(sha)
                if source is None:
                    raise CommandError(NOSCRIPT, "NOSCRIPT") from None
                reply, after = yield from self.scratch(view, coordinator, sha, source, keys,
                                                       args, current)
            current.update(after)
            return (yield from self._finish(view, sha, source, None, reply,
                                            self.requests.config.write_quorum)), list(after)
        except CommandError as e:
            return e, list(after)
        except _Stale as e:  # the ring moved: the whole transaction runs again
            raise Retry from e

    def _once(self, view: View, sha: str, source: Any, keys: list[Any], args: list[Any],
              mode: str) -> Steps:
        requests = self.requests
        nodes = self._node(view, keys)
        failures: dict[str, str] = {}
        for node in nodes:
            name = view.names.get(node, node)
            if keys and requests.suspects.suspected(node):
                failures[name] = ("the keys' master failed moments ago; scripts resume once "
                                  "it answers or the ring replaces it")
                break
            try:
                reply = yield Execute(node, ("EVAL", WRAPPER, len(keys), *keys, view.token,
                                             sha, source, mode, *args))
            except ResponseError as e:
                text = str(e)
                if text.startswith("STALERING"):
                    raise _Stale from e
                if is_locked(e):
                    raise Locked.from_error(node, e, keys[0] if keys else None) from e
                if text.startswith("NOSCRIPT"):
                    raise _NoScript from e
                raise CommandError.from_redis(e) from e
            except DOWN_ERRORS as e:
                requests.suspects.suspect(node)
                failures[name] = describe(e)
                if keys:  # it may have run the script: not sent elsewhere
                    failures[name] += "; it may have run the script"
                    break
                continue  # no keys: it wrote nothing, another member may run it
            requests.suspects.clear(node)
            return reply, node
        raise UnavailableError(printable(keys[0]) if keys else f"script {sha}", failures)

    def _finish(self, view: View, sha: str, source: Any, master: str | None, reply: list,
                level: WriteQuorum) -> Steps:
        """Give every copy the state of the keys the script wrote; the reply."""
        status = reply[0]
        if status == b"compile":
            raise CommandError(f"ERR Error compiling script (new function): {_text(reply[1])}")
        if status == b"loaded":
            if reply[1]:
                yield from self.store(view, sha, source)
            return sha.encode()
        version, fresh, written = reply[2], reply[3], reply[4:]
        if written and master is not None:  # (None: applied by the transaction protocol)
            yield from self._replicate(view, master, written, version, level)
        if fresh:  # EVAL caches its script, as Redis does: on every member
            yield from self.store(view, sha, source)
        if status == b"err":
            raise CommandError(f"ERR Error running script (call to f_{sha}): "
                               f"{_text(reply[1])}")
        value = decode(reply[1])
        if isinstance(value, ErrorReply):
            raise error_of(_text(value))
        return value

    def _replicate(self, view: View, master: str, written: list[Any], version: Any,
                   level: WriteQuorum) -> Steps:
        requests = self.requests
        groups: dict[Any, list[Any]] = {}
        for key in written:
            groups.setdefault(view.route(key), []).append(key)
        for route, keys in groups.items():
            targets = [n for n in route.direct[1:] + route.copy_to if n != master]
            try:  # two round trips for all the keys and copies (STATES, INSTALL_MANY)
                missed = yield from steps.sync_keys(master, targets, keys, view.token)
            except (*DOWN_ERRORS, ResponseError) as e:
                missed = {t: describe(e) for t in targets}
            failures = {view.names.get(n, n): f"missed the write and was not repaired yet: "
                        f"{why}" for n, why in missed.items()}
            held = {master, *(n for n in targets if n not in missed)}
            if any("STALERING" in why for why in failures.values()):
                yield from requests._ring_moved(keys, master, None, level)
                continue
            if requests._check_quorum(keys, route, held, failures, level):
                requests.repairs.settle(master, keys, version)

    # ------------------------------------------------------------ the cache
    def store(self, view: View, sha: str, source: Any) -> Steps:
        """Keep ``source`` on every member (a member down gets it later from another)."""
        yield Fanout(tuple(view.ring.nodes), ("EVAL", STORE, 0, sha, source))

    def find(self, sha: str) -> Steps:
        """The source of ``sha`` from any member that has it, or None."""
        view = yield from self.requests.follower.follow()
        outcomes = yield Fanout(tuple(view.ring.nodes), ("EVAL", SOURCE, 0, sha))
        for o in outcomes:
            if o.ok and o.value is not None:
                return o.value
        return None

    def script(self, argv: Sequence[Any]) -> Steps:
        """SCRIPT LOAD / EXISTS / FLUSH, cluster-wide."""
        sub = _text(argv[1]).upper()
        n = len(argv)
        if sub == "LOAD" and n == 3:
            sha = sha1(argv[2])
            level = self.requests.level("write_quorum", None)
            return (yield from self.run(sha, argv[2], [], [], level, mode="load"))
        if sub == "EXISTS" and n >= 3:
            view = yield from self.requests.follower.follow()
            shas = [_text(a).lower() for a in argv[2:]]
            outcomes = yield Fanout(tuple(view.ring.nodes), ("EVAL", EXISTS, 0, *shas))
            answered = [o.value for o in outcomes if o.ok]
            if not answered:
                raise UnavailableError("script cache", {
                    view.names.get(o.node, o.node): describe(o.error) for o in outcomes})
            return [int(any(v[i] for v in answered)) for i in range(len(shas))]
        if sub == "FLUSH" and n <= 3:
            if n == 3 and _text(argv[2]).upper() not in ("ASYNC", "SYNC"):
                raise CommandError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
            view = yield from self.requests.follower.follow()
            outcomes = yield Fanout(tuple(view.ring.nodes), ("EVAL", FLUSH, 0))
            failed = {view.names.get(o.node, o.node): describe(o.error)
                      for o in outcomes if not o.ok}
            if failed:
                raise UnavailableError("script cache", failed,
                                       needed="every member, to flush the script cache")
            return Status(b"OK")
        if sub in ("KILL", "DEBUG"):
            raise CommandError(f"ERR SCRIPT {sub} is not served by dtriad: scripts run on the "
                               f"backends, where an operator can end one (SCRIPT KILL)")
        if sub == "HELP" and n == 2:
            return [Status(line.encode()) for line in _HELP]
        raise CommandError(f"ERR Unknown subcommand or wrong number of arguments for "
                           f"'{_text(argv[1])}'. Try SCRIPT HELP.")


_HELP = (
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
)
