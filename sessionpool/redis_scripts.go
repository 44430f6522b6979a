package sessionpool

import "github.com/redis/go-redis/v9"

// The Lua scripts of the Redis backend. Every mutation of the shared pool is
// one of them, so it is atomic on the server: no other client sees a half
// done allocation, mark or retirement.
//
// Keys: every key of a pool starts with "sp:{KEY}:" (KEY is the pool's
// PersistStateKey), so all of them hash to one Redis Cluster slot:
//
//	held     SET    the ID of every held session, usable or not
//	exp      ZSET   ID -> ExpiresAt (µs) of every held session not retired
//	retired  SET    the IDs of the held sessions that are retired
//	ring     LIST   held IDs in creation order (RoundRobin only)
//	s:ID     STRING one session, "v u e r mu me ed c x\np\nd": its version,
//	                uses, error score, retired (0|1), limits (max uses, max
//	                error score, decrement), created and expires (µs), then
//	                its upstream and its user data (JSON) on lines of their own,
//	                then its fingerprint and the end of its pause (µs), each
//	                on a line of its own when set (recordTail)
//	c:ID     HASH   its cookies: "name\x00domain\x00path" -> the cookie
//	                (see cookieValue)
//
// A session is one string rather than a hash because a script reads it on
// every request: HGETALL of eleven fields costs the server about 10 µs when a
// script calls it (the reply is converted to Lua values field by field), a
// GET and a string.match about 1 µs.
//
// s:ID and c:ID expire (PEXPIRE) when the session does, so an expired
// session's data vanishes even when no pool evicts it; the sets and the ring
// are swept by the allocation script. Times are microseconds: Lua numbers are
// doubles, exact to 2^53.
//
// The scripts declare the pool's fixed keys in KEYS and derive the session
// keys from the prefix: they hash to the same slot, which Redis Cluster
// accepts for keys a script does not declare.

// scriptPrelude holds the helpers of the allocation script.
const scriptPrelude = `
local held, exp, retired, ring = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local pfx, now, max, strategy = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]

` + scriptParse + `
-- load returns the parsed session (false when it does not parse) and its
-- record; nil when it is not held.
local function load(id)
  local raw = record(pfx .. 's:' .. id)
  if not raw then return nil, nil end
  return parse(raw), raw
end

-- usable reports whether the parsed session h is usable at now.
local function usable(h)
  return h.r == '0' and h.u < h.mu and h.e < h.me and now < h.x
end

local function hit(id, raw)
  return {'hit', id, raw, redis.call('HGETALL', pfx .. 'c:' .. id)}
end

-- bad is the reply for a session whose record does not parse: the caller
-- reports it, naming the session and the field. Nothing is changed.
local function bad(id, raw)
  return {'bad', id, raw, redis.call('HGETALL', pfx .. 'c:' .. id)}
end

local function drop(id)
  redis.call('SREM', held, id)
  redis.call('ZREM', exp, id)
  redis.call('SREM', retired, id)
  redis.call('LREM', ring, 0, id)
  redis.call('DEL', pfx .. 's:' .. id, pfx .. 'c:' .. id)
end

local function evict()
  for _, id in ipairs(redis.call('SMEMBERS', retired)) do drop(id) end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', exp, '-inf', now)) do drop(id) end
end

-- insert adds the candidate of ARGV[6..]: id, max age (µs), retired (0|1),
-- its record up to c and from x on (the first line's "v u e r mu me ed" and
-- "\np\nd"), then cookie field/value pairs. It is created now. Without a
-- candidate (ARGV[6] is '') it replies {'need'}: the caller could not build
-- one.
local function insert()
  if ARGV[6] == '' then return {'need'} end
  local id, age, r = ARGV[6], tonumber(ARGV[7]), ARGV[8]
  local x = string.format('%d', now + age)
  local ttl = string.format('%d', math.max(1, math.ceil(age / 1000)))
  local s = pfx .. 's:' .. id
  local rec = ARGV[9] .. string.format(' %d ', now) .. x .. ARGV[10]
  if not redis.call('SET', s, rec, 'NX', 'PX', ttl) then return {'taken'} end
  if #ARGV > 10 then
    local c = pfx .. 'c:' .. id
    redis.call('HSET', c, unpack(ARGV, 11))
    redis.call('PEXPIRE', c, ttl)
  end
  redis.call('SADD', held, id)
  if r == '1' then
    redis.call('SADD', retired, id)
  else
    redis.call('ZADD', exp, x, id)
  end
  if strategy == 'o' then redis.call('RPUSH', ring, id) end
  return {'new'}
end
`

// allocScript is GetSession's and AddSession's one round trip.
//
// KEYS: held, exp, retired, ring. ARGV: the key prefix, now (µs), the
// maximum pool size, the strategy (r, o: round robin, u), the operation,
// then the candidate (see insert). The operation "get" runs the seed's flow;
// "get:ID" (UseUntilFailure) first returns the session ID when it is usable;
// "add" adds the candidate under its ID, evicting an unusable holder (and
// the memberships left by one whose keys expired) and, when the pool is
// full, every unusable session.
// Replies: {'hit', id, session record, cookie hash}, {'new'} (the candidate
// was added), {'taken'} (its ID is held: draw another), {'exists'} (add: a
// usable session holds the ID), {'need'} (a session must be created and no
// candidate was given), {'bad', id, session record, cookie hash} (that
// session's record does not parse: nothing was changed).
var allocScript = redis.NewScript(scriptPrelude + `
local op = ARGV[5]
if op == 'add' then
  local h, raw = load(ARGV[6])
  if h == false then return bad(ARGV[6], raw) end
  if h and usable(h) then return {'exists'} end
  -- an unusable holder, or what one whose keys expired left in the sets
  drop(ARGV[6])
  if redis.call('SCARD', held) >= max then evict() end
  return insert()
end
if string.sub(op, 1, 4) == 'get:' then
  local last = string.sub(op, 5)
  local h, raw = load(last)
  if h == false then return bad(last, raw) end
  if h and usable(h) then return hit(last, raw) end
end
if redis.call('SCARD', held) < max then return insert() end
local id
if strategy == 'o' then id = redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT') end
if not id then id = redis.call('SRANDMEMBER', held) end
local h, raw = load(id)
if h == false then return bad(id, raw) end
if h and usable(h) then return hit(id, raw) end
if h == nil then drop(id) end
evict()
return insert()
`)

// commitScript applies a session's cookie changes and then its mark, in one
// round trip.
//
// KEYS: s:ID, c:ID, retired, exp. ARGV: the mark (n: none, g: good, b: bad,
// r: retire), now (µs), the event channel, this pool's origin tag, the ID,
// the session's creation (µs, as its copy has it), then cookie field/value
// pairs: an empty value deletes, and a value starting with '-' (a change
// received over plain http) neither replaces nor deletes a stored Secure
// cookie (RFC 6265bis: leave secure cookies alone; the copy that sends it
// may not know that cookie).
// Reply: nil when the session is gone or the ID is held by a session
// created at another time (the copy's session was spent and its name taken
// again: nothing is changed), {'bad', session record} when its record does
// not parse (nothing is changed), else {uses, error score, retired,
// version, fired}.
var commitScript = redis.NewScript(scriptParse + `
local s, c = KEYS[1], KEYS[2]
local raw = record(s)
if not raw then return false end
local h = parse(raw)
if not h then return {'bad', raw} end
if h.c ~= tonumber(ARGV[6]) then return false end
local u, e, r, v = h.u, h.e, h.r == '1', h.v
if #ARGV > 6 then
  for i = 7, #ARGV, 2 do
    local field, val = ARGV[i], ARGV[i + 1]
    local guarded = string.sub(val, 1, 1) == '-'
    if guarded then val = string.sub(val, 2) end
    if guarded and string.match(redis.call('HGET', c, field) or '', '^%d+\t.s') then
      -- the stored cookie is Secure: it stays
    elseif val == '' then
      redis.call('HDEL', c, field)
    else
      redis.call('HSET', c, field, val)
    end
  end
  local ttl = redis.call('PTTL', s)
  if ttl > 0 then redis.call('PEXPIRE', c, ttl) end
end
local kind, fire = ARGV[1], 0
if kind ~= 'n' and not (kind == 'r' and r) then
  u = u + 1
  if kind == 'r' then
    r, fire = true, 1
  else
    if kind == 'g' then e = math.max(0, e - h.ed) else e = e + 1 end
    if not r and (e >= h.me or u >= h.mu or tonumber(ARGV[2]) >= h.x) then
      r, fire = true, 1
    end
  end
  v = v + 1
  raw = string.format('%d %d %.17g %s ', v, u, e, r and '1' or '0') .. h.rest
  redis.call('SET', s, raw, 'KEEPTTL')
  if fire == 1 then
    redis.call('SADD', KEYS[3], ARGV[5])
    redis.call('ZREM', KEYS[4], ARGV[5])
    redis.call('PUBLISH', ARGV[3], cjson.encode({o = ARGV[4], id = ARGV[5], s = raw, c = redis.call('HVALS', c)}))
  end
end
return {u, string.format('%.17g', e), r and 1 or 0, v, fire}
`)

// readScript returns one session's record and cookies: {session record,
// cookie hash}, the first false (nil) when the session is not held.
var readScript = redis.NewScript(scriptRecord + `
return {record(KEYS[1]), redis.call('HGETALL', KEYS[2])}
`)

// userDataScript changes a held session's user data and pause, the record
// from its third line on (see recordTail). ARGV: the session's creation
// (µs), the end of a pause (µs, 0 for none), then, optionally, the new user
// data ("" for none). The pause is only ever extended: a stored one that
// ends later stands (the caller's copy of the session may not know of it,
// set by another instance). Without new user data the stored user data
// stay; the fingerprint always does. It does nothing when the session is
// gone or the ID is held by a session created at another time (a later
// session under the spent one's name). Reply: 1 when done, 0 when not,
// {'bad', session record} when the record has not the lines it changes
// (nothing is changed).
var userDataScript = redis.NewScript(scriptRecord + `
local raw = record(KEYS[1])
if not raw then return 0 end
local c = string.match(raw, '^%S+ %S+ %S+ %S+ %S+ %S+ %S+ (%S+) ')
local head, d, fp, paused = string.match(raw, '^([^\n]*\n[^\n]*\n)([^\n]*)\n?([^\n]*)\n?([^\n]*)$')
if not (c and head) then return {'bad', raw} end
if tonumber(c) ~= tonumber(ARGV[1]) then return 0 end
if #ARGV > 2 then d = ARGV[3] end
-- the later pause, compared as decimal strings: µs past 2^53 are not
-- exact as Lua numbers
paused = string.match(paused, '^%d+$') or '0'
if #ARGV[2] > #paused or (#ARGV[2] == #paused and ARGV[2] > paused) then paused = ARGV[2] end
local tail = d
if paused ~= '0' then
  tail = d .. '\n' .. fp .. '\n' .. paused
elseif fp ~= '' then
  tail = d .. '\n' .. fp
end
redis.call('SET', KEYS[1], head .. tail, 'KEEPTTL')
return 1
`)

// scriptRecord defines record(key): the session record under key, false
// when there is none. A key of another type (the hash an earlier version
// of this backend kept a session in, say) reads as a record that does not
// parse, naming the type, rather than failing the script: the scripts
// then report that session's data as bad.
const scriptRecord = `
local function record(key)
  local raw = redis.pcall('GET', key)
  if type(raw) == 'table' then
    return '(a Redis ' .. redis.call('TYPE', key).ok .. ')'
  end
  return raw
end
`

// scriptParse defines record (scriptRecord) and parse(raw): the session
// record as a table (numbers
// for the fields the scripts compute with, and its creation c, which tells
// the session from a later one under the same ID; rest: the record from mu
// on, which they never change), or false when it does not parse.
const scriptParse = scriptRecord + `
local function finite(n)
  return n ~= nil and n == n and n > -math.huge and n < math.huge
end

local function parse(raw)
  local v, u, e, r, rest, mu, me, ed, c, x = string.match(raw,
    '^(%d+) (%d+) (%S+) ([01]) ((%d+) (%S+) (%S+) (%-?%d+) (%-?%d+)\n.*)$')
  if not v then return false end
  local h = {v = tonumber(v), u = tonumber(u), e = tonumber(e), r = r, mu = tonumber(mu),
    me = tonumber(me), ed = tonumber(ed), c = tonumber(c), x = tonumber(x), rest = rest}
  if not (finite(h.e) and finite(h.me) and finite(h.ed)) then return false end
  return h
end
`

// countScript returns {held, retired, expired and not retired} at ARGV[1].
var countScript = redis.NewScript(`
return {redis.call('SCARD', KEYS[1]), redis.call('SCARD', KEYS[3]), redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[1])}
`)
