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
//	s:ID     HASH   one session: u (uses), e (error score), r (retired 0|1),
//	                mu, me, ed (its limits), c, x (created and expires, µs),
//	                p (upstream), d (user data JSON), v (version)
//	c:ID     HASH   its cookies: "name\x00domain\x00path" -> "seq JSON"
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

local function load(id)
  local a = redis.call('HGETALL', pfx .. 's:' .. id)
  if #a == 0 then return nil, a end
  local h = {}
  for i = 1, #a, 2 do h[a[i]] = a[i + 1] end
  return h, a
end

-- usable reports whether the session of hash h is usable at now; nil when
-- a field it needs does not parse (something else wrote the key).
local function usable(h)
  local u, mu, e, me, x = tonumber(h.u), tonumber(h.mu), tonumber(h.e), tonumber(h.me), tonumber(h.x)
  if not (u and mu and e and me and x) or (h.r ~= '0' and h.r ~= '1') then return nil end
  return h.r == '0' and u < mu and e < me and now < x
end

local function hit(id, a)
  return {'hit', id, a, redis.call('HGETALL', pfx .. 'c:' .. id)}
end

-- bad is the reply for a session whose hash does not parse: the caller
-- reports it, naming the session and the field. Nothing is changed.
local function bad(id, a)
  return {'bad', id, a, redis.call('HGETALL', pfx .. 'c:' .. id)}
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

-- insert adds the candidate of ARGV[6..]: id, ttl (ms), expires (µs),
-- retired (0|1), the number of hash arguments, the hash arguments, then
-- cookie field/value pairs. Without a candidate (ARGV[6] is '') it replies
-- {'need'}: the caller could not build one.
local function insert()
  if ARGV[6] == '' then return {'need'} end
  local id, ttl, x, r, n = ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
  local s = pfx .. 's:' .. id
  if redis.call('EXISTS', s) == 1 then return {'taken'} end
  redis.call('HSET', s, unpack(ARGV, 11, 10 + n))
  redis.call('PEXPIRE', s, ttl)
  if #ARGV > 10 + n then
    local c = pfx .. 'c:' .. id
    redis.call('HSET', c, unpack(ARGV, 11 + n))
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
// "add" adds the candidate under its ID, evicting an unusable holder and,
// when the pool is full, every unusable session.
// Replies: {'hit', id, session hash, cookie hash}, {'new'} (the candidate
// was added), {'taken'} (its ID is held: draw another), {'exists'} (add: a
// usable session holds the ID), {'need'} (a session must be created and no
// candidate was given), {'bad', id, session hash, cookie hash} (that
// session's hash does not parse: nothing was changed).
var allocScript = redis.NewScript(scriptPrelude + `
local op = ARGV[5]
if op == 'add' then
  local h, a = load(ARGV[6])
  if h then
    local ok = usable(h)
    if ok == nil then return bad(ARGV[6], a) end
    if ok then return {'exists'} end
    drop(ARGV[6])
  end
  if redis.call('SCARD', held) >= max then evict() end
  return insert()
end
if string.sub(op, 1, 4) == 'get:' then
  local last = string.sub(op, 5)
  local h, a = load(last)
  if h then
    local ok = usable(h)
    if ok == nil then return bad(last, a) end
    if ok then return hit(last, a) end
  end
end
if redis.call('SCARD', held) < max then return insert() end
local id
if strategy == 'o' then id = redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT') end
if not id then id = redis.call('SRANDMEMBER', held) end
local h, a = load(id)
if h then
  local ok = usable(h)
  if ok == nil then return bad(id, a) end
  if ok then return hit(id, a) end
else
  drop(id)
end
evict()
return insert()
`)

// commitScript applies a session's cookie changes and then its mark, in one
// round trip.
//
// KEYS: s:ID, c:ID, retired, exp. ARGV: the mark (n: none, g: good, b: bad,
// r: retire), now (µs), the event channel, this pool's origin tag, the ID,
// then cookie field/value pairs: an empty value deletes, and a value
// starting with '-' (a change received over plain http) neither replaces
// nor deletes a stored Secure cookie (RFC 6265bis: leave secure cookies
// alone; the copy that sends it may not know that cookie).
// Reply: nil when the session is gone, {'bad', session hash} when its hash
// does not parse (nothing is changed), else {uses, error score, retired,
// version, fired}.
var commitScript = redis.NewScript(`
local s, c = KEYS[1], KEYS[2]
local f = redis.call('HMGET', s, 'u', 'e', 'r', 'v', 'mu', 'me', 'ed', 'x')
if not f[1] then return false end
local u, e, r, v = tonumber(f[1]), tonumber(f[2]), f[3] == '1', tonumber(f[4])
local mu, me, ed, x = tonumber(f[5]), tonumber(f[6]), tonumber(f[7]), tonumber(f[8])
if not (u and e and v and mu and me and ed and x) or (f[3] ~= '0' and f[3] ~= '1') then
  return {'bad', redis.call('HGETALL', s)}
end
if #ARGV > 5 then
  for i = 6, #ARGV, 2 do
    local field, val = ARGV[i], ARGV[i + 1]
    local guarded = string.sub(val, 1, 1) == '-'
    if guarded then val = string.sub(val, 2) end
    if guarded and string.find(redis.call('HGET', c, field) or '', ',"secure":true,', 1, true) then
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
    if kind == 'g' then e = math.max(0, e - ed) else e = e + 1 end
    if not r and (e >= me or u >= mu or tonumber(ARGV[2]) >= x) then
      r, fire = true, 1
    end
  end
  v = v + 1
  redis.call('HSET', s, 'u', string.format('%d', u), 'e', string.format('%.17g', e), 'r', r and '1' or '0', 'v', string.format('%d', v))
  if fire == 1 then
    redis.call('SADD', KEYS[3], ARGV[5])
    redis.call('ZREM', KEYS[4], ARGV[5])
    redis.call('PUBLISH', ARGV[3], cjson.encode({o = ARGV[4], id = ARGV[5], h = redis.call('HGETALL', s), c = redis.call('HVALS', c)}))
  end
end
return {u, string.format('%.17g', e), r and 1 or 0, v, fire}
`)

// readScript returns one session's hash and cookies: {session hash, cookie
// hash}, the first empty when the session is not held.
var readScript = redis.NewScript(`
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
`)

// userDataScript replaces a held session's user data (ARGV[1], "" for
// none); it does nothing when the session is gone.
var userDataScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1])
return 1
`)

// countScript returns {held, retired, expired and not retired} at ARGV[1].
var countScript = redis.NewScript(`
return {redis.call('SCARD', KEYS[1]), redis.call('SCARD', KEYS[3]), redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[1])}
`)
