"""The Lua scripts of the shared crawl state: each one step, atomic in Redis.

Every change to the shared state is one of these scripts (EVALSHA), so two
workers never read-then-write the same thing: Redis runs one script at a time.
Each script is the common ``PRELUDE`` (key names, the crawl's settings, and
admission: ``Admission.admit`` of ``admission.py`` over Redis) followed by its
own body.  Arguments: ``ARGV[1]`` the key prefix, ``ARGV[2]`` the time in
milliseconds (the caller's clock: Lua scripts may not read Redis's before
7.0's effects replication, and workers' clocks only need to agree to within a
lease), then the script's own.

Keys, under PREFIX:

* ``meta`` (hash): identity, settings (how every worker fetches: JSON),
  started, done, stopped, pending (queued + leased), seq (last id), pages,
  requests, reissued, lost, and what the scripts read (``depth``,
  ``max_pages``, ``per_host``, ``delay``, ``fragments``);
* ``u`` (hash): URL -> "ID,DEPTH,KIND" (KIND p page, e external, s other
  scheme; upper case: a seed) -- the seen-set and the report's directory;
* ``q:HOST`` (list): the host's queued links, "ID KIND URL";
* ``hosts`` (sorted set): hosts with queued links and a free slot, by when
  their next request may start;
* ``h:HOST`` (hash): ``n`` links in flight, ``open`` (answered once: all
  ``per_host`` slots; before: one), ``delay`` and ``next`` (spacing, ms),
  ``dead`` ("kind\\tmessage": the host is settled);
* ``leases`` (sorted set): ID -> deadline; ``lease`` (hash): ID -> "TOKEN HOST
  ENTRY"; ``issues:B`` (hash): ID -> times leased;
* ``o`` (hash): ID -> the outcome (``Link.outcome()``, JSON);
* ``r:B`` / ``rf:B`` (hash): ID -> "COUNT:ID,ID,..." referrers / "ID,ID" pages
  that redirect there; ``f`` (hash): "URL#FRAGMENT" -> referrer IDs;
  ``ft`` (set): URLs named with a fragment; ``c`` (hash): ID -> children
  (with a depth limit, to lower depths when a shorter path turns up);
* ``td`` (hash) too deep: URL -> depth; ``x`` (set) excluded; ``ol`` (set)
  over the page limit;
* ``robots`` (hash): origin -> "STATUS\\nBODY" or "-\\tKIND\\tMESSAGE";
* ``w`` (hash): worker name -> links it finished.

The hashes marked ``:B`` are cut in buckets of 100 ids (B = ID // 100): Redis
keeps a hash that small as a listpack, a few bytes per field, where one big
hash costs about 60 bytes per field -- a third of the memory of a URL known.
"""

from __future__ import annotations

__all__ = ["PRELUDE", "SCRIPTS", "MAX_ISSUES"]

#: Times a link is leased before it fails as lost (its workers all died with it).
MAX_ISSUES = 4

PRELUDE = r"""
local P = ARGV[1] .. ":"
local NOW = tonumber(ARGV[2])
local META = P .. "meta"
local MAX_REFERRERS = 100
local CFG = redis.call("HMGET", META, "depth", "max_pages", "per_host", "fragments", "stopped",
                       "delay")
local DEPTH = tonumber(CFG[1] or "-1")
local MAX_PAGES = tonumber(CFG[2] or "-1")
local PER_HOST = tonumber(CFG[3] or "8")
local FRAGMENTS = CFG[4] == "1"
local STOPPED = CFG[5]  -- the crawl is stopped for all (max-time): nothing more is leased
local DELAY = tonumber(CFG[6] or "0")  -- --delay, ms: every host's spacing at least

-- Per-link hashes are cut in buckets of BUCKET ids: a small hash is kept as a
-- listpack (a few bytes a field) where one big hash pays ~60 bytes a field.
local BUCKET = 100
local function bucket(name, id)
  return P .. name .. ":" .. math.floor(tonumber(id) / BUCKET)
end

local function rec(url)
  local v = redis.call("HGET", P .. "u", url)
  if not v then return nil end
  local id, d, k = string.match(v, "^(%d+),(%-?%d+),(%a)$")
  return id, tonumber(d), k
end

local function outcome(err, method, skipped)
  return cjson.encode({status = cjson.null, error = err or cjson.null, content_type = "",
    size = 0, truncated = false, redirect = cjson.null, final_url = cjson.null,
    skipped = skipped or cjson.null, method = method or "", attempts = 0, elapsed = 0,
    anchors = cjson.null})
end

local function dead_error(dead)
  local kind, message = string.match(dead, "^([^\t]*)\t(.*)$")
  return kind .. ": " .. message
end

local function pending(delta)
  -- As an integer: Lua's -0 (a negated 0) reaches Redis as "-0", which HINCRBY refuses.
  local left = redis.call("HINCRBY", META, "pending", string.format("%d", delta))
  if left <= 0 and redis.call("HEXISTS", META, "seeded") == 1 then
    redis.call("HSETNX", META, "done", NOW)
  end
  return left
end

-- Whether HOST may start a request now, and if so put it among the ready hosts.
local function ready(host)
  local h = P .. "h:" .. host
  local s = redis.call("HMGET", h, "n", "open", "next", "dead")
  if s[4] then redis.call("ZREM", P .. "hosts", host); return end
  local limit = (s[2] == "1") and PER_HOST or 1
  if tonumber(s[1] or "0") < limit and redis.call("LLEN", P .. "q:" .. host) > 0 then
    local at = math.max(tonumber(s[3] or "0"), NOW)
    redis.call("ZADD", P .. "hosts", at, host)
  else
    redis.call("ZREM", P .. "hosts", host)
  end
end

local function enqueue(id, k, url, host)
  local dead = redis.call("HGET", P .. "h:" .. host, "dead")
  if dead then  -- the host is settled: the link fails as its others did, at once
    redis.call("HSET", P .. "o", id, outcome(dead_error(dead), k == "e" and "HEAD" or "GET"))
    return
  end
  redis.call("RPUSH", P .. "q:" .. host, id .. " " .. k .. " " .. url)
  pending(1)
  if not redis.call("ZSCORE", P .. "hosts", host) then ready(host) end
end

local function add_referrer(id, ref)
  local r = bucket("r", id)
  local v = redis.call("HGET", r, id)
  if not v then redis.call("HSET", r, id, "1:" .. ref); return end
  local count, ids = string.match(v, "^(%d+):(.*)$")
  count = tonumber(count) + 1
  if count <= MAX_REFERRERS then ids = ids .. "," .. ref end
  redis.call("HSET", r, id, count .. ":" .. ids)
end

local function add_to_list(hash, field, item, cap)
  local v = redis.call("HGET", hash, field)
  if not v then redis.call("HSET", hash, field, item); return end
  if string.find("," .. v .. ",", "," .. item .. ",", 1, true) then return end
  local _, commas = string.gsub(v, ",", "")
  if cap and commas + 1 >= cap then return end
  redis.call("HSET", hash, field, v .. "," .. item)
end

local shorten

-- Admission.admit: a link to URL (kind K: p, e, s or x; on HOST) met at DEPTH,
-- from the page REF (an id, or nil for a seed); COUNT: the first time this
-- page names it (a page counts once among a link's referrers).
local function admit(url, k, host, frag, depth, ref, via, seed, count)
  if frag ~= "" and FRAGMENTS and ref then
    redis.call("SADD", P .. "ft", url)
    add_to_list(P .. "f", url .. "#" .. frag, ref, MAX_REFERRERS)
  end
  local id, d, kind = rec(url)
  if id then
    if ref then
      if via then add_to_list(bucket("rf", id), id, ref) elseif count then add_referrer(id, ref) end
    end
    if seed and kind == string.lower(kind) then
      redis.call("HSET", P .. "u", url, id .. "," .. d .. "," .. string.upper(kind))
    end
    if depth < d then shorten(id, url, depth) end
    return
  end
  if k == "x" then redis.call("SADD", P .. "x", url); return end
  if k == "p" then
    if DEPTH >= 0 and depth > DEPTH then
      local was = tonumber(redis.call("HGET", P .. "td", url) or depth)
      redis.call("HSET", P .. "td", url, math.min(was, depth))
      return
    end
    if MAX_PAGES >= 0 and tonumber(redis.call("HGET", META, "pages") or "0") >= MAX_PAGES then
      redis.call("SADD", P .. "ol", url)
      return
    end
    redis.call("HINCRBY", META, "pages", 1)
  end
  redis.call("HDEL", P .. "td", url)
  id = redis.call("HINCRBY", META, "seq", 1)
  redis.call("HSET", P .. "u", url, id .. "," .. depth .. "," .. (seed and string.upper(k) or k))
  if ref then
    if via then add_to_list(bucket("rf", id), id, ref) else add_referrer(id, ref) end
  end
  if k == "s" then
    redis.call("HSET", P .. "o", id, outcome(nil, "", "scheme"))
  else
    enqueue(id, k, url, host)
  end
end

-- Admission._shorten: a shorter path to URL: lower its depth and its parsed
-- children's, admitting those that were too deep.
shorten = function(id, url, depth)
  local stack = {{id, url, depth}}
  while #stack > 0 do
    local top = table.remove(stack)
    local nid, nurl, nd = top[1], top[2], top[3]
    local _, cur, kind = rec(nurl)
    if nd < cur then
      redis.call("HSET", P .. "u", nurl, nid .. "," .. nd .. "," .. kind)
      local children = redis.call("HGET", P .. "c", nid)
      if children then
        for line in string.gmatch(children, "[^\n]+") do
          local ck, chost, cvia, curl = string.match(line, "^(%a)\t([^\t]*)\t(%d)\t(.*)$")
          local cd = (cvia == "1") and nd or nd + 1
          local cid, cdepth = rec(curl)
          if not cid then
            admit(curl, ck, chost, "", cd, nid, cvia == "1", false, true)
          elseif cd < cdepth then
            table.insert(stack, {cid, curl, cd})
          end
        end
      end
    end
  end
end

-- The links of a blob: lines "KIND\tHOST\tFRAGMENT\tURL" (``frontier.pack``).
local function targets(blob)
  return string.gmatch(blob, "(%a)\t([^\t\n]*)\t([^\t\n]*)\t([^\n]+)")
end

-- Admission.follow: what page ID (at URL) leads to (BLOB); VIA: a redirect.
local function follow(id, url, blob, via)
  local _, depth = rec(url)
  local d = via and depth or depth + 1
  local seen = {}
  local children = {}
  for k, host, frag, turl in targets(blob) do
    admit(turl, k, host, frag, d, id, via, false, not seen[turl])
    seen[turl] = true
    if DEPTH >= 0 then
      table.insert(children, k .. "\t" .. host .. "\t" .. (via and "1" or "0") .. "\t" .. turl)
    end
  end
  if DEPTH >= 0 then redis.call("HSET", P .. "c", id, table.concat(children, "\n")) end
end

-- Give back HOST's slot of a lease that ends.
local function unlease(id, host)
  redis.call("HDEL", P .. "lease", id)
  redis.call("ZREM", P .. "leases", id)
  local h = P .. "h:" .. host
  if tonumber(redis.call("HINCRBY", h, "n", -1)) < 0 then redis.call("HSET", h, "n", 0) end
end

-- Up to WANT queued links whose host has a free slot and may start now,
-- leased to TOKEN for LEASE_MS: sevens of id, kind, url, host, delay, open, anchors.
local function lease(token, want, lease_ms)
  local out = {}
  if want <= 0 or STOPPED then return out end
  local hosts = redis.call("ZRANGEBYSCORE", P .. "hosts", "-inf", NOW, "LIMIT", 0, want)
  for _, host in ipairs(hosts) do
    local h = P .. "h:" .. host
    local s = redis.call("HMGET", h, "n", "open", "next", "delay")
    local n, nxt = tonumber(s[1] or "0"), tonumber(s[3] or "0")
    local delay = math.max(DELAY, tonumber(s[4] or "0"))
    local limit = (s[2] == "1") and PER_HOST or 1
    while #out < want * 7 and n < limit and nxt <= NOW do
      local entry = redis.call("LPOP", P .. "q:" .. host)
      if not entry then break end
      local id, k, url = string.match(entry, "^(%d+) (%a) (.*)$")
      n = n + 1
      if delay > 0 then nxt = NOW + delay end  -- this lease's first request is spaced
      redis.call("ZADD", P .. "leases", NOW + lease_ms, id)
      redis.call("HSET", P .. "lease", id, token .. " " .. host .. " " .. entry)
      redis.call("HINCRBY", bucket("issues", id), id, 1)
      local anchors = redis.call("SISMEMBER", P .. "ft", url)
      for _, v in ipairs({id, k, url, host, delay, s[2] or "0", anchors}) do
        table.insert(out, v)
      end
    end
    redis.call("HSET", h, "n", n, "next", nxt)
    ready(host)
    if #out >= want * 7 then break end
  end
  return out
end

local function held_by(id, token)
  local v = redis.call("HGET", P .. "lease", id)
  if not v then return nil end
  local t, host, entry = string.match(v, "^(%S+) (%S+) (.*)$")
  if t ~= token then return nil end
  return host, entry
end
"""

SCRIPTS = {
    # create(identity, started, depth, max_pages, per_host, delay, fragments,
    # format, settings): the crawl's meta, unless there is one; returns the
    # identity it holds.
    "create": r"""
local have = redis.call("HGET", META, "identity")
if have then return have end
redis.call("HSET", META, "identity", ARGV[3], "started", ARGV[4], "depth", ARGV[5],
           "max_pages", ARGV[6], "per_host", ARGV[7], "delay", ARGV[8], "fragments", ARGV[9],
           "pending", 0, "seq", 0, "pages", 0, "requests", 0, "format", ARGV[10],
           "settings", ARGV[11])
return ARGV[3]
""",
    # seed(last, links): admit start URLs (a blob as ``follow`` reads); the last
    # call marks the seeding done (LAST = "1").
    "seed": r"""
for k, host, _, url in targets(ARGV[4]) do
  admit(url, k, host, "", 0, nil, false, true, false)
end
if ARGV[3] == "1" then
  redis.call("HSET", META, "seeded", 1)
  pending(0)
end
return redis.call("HGET", META, "pending")
""",
    # lease(token, max, lease_ms): up to MAX queued links whose host has a free
    # slot and may start now (sevens: id, kind, url, host, delay, open,
    # anchors), then the ms until the next host is ready (-1: none queued, or
    # the crawl is stopped).
    "lease": r"""
local out = lease(ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
local first = STOPPED and {} or redis.call("ZRANGE", P .. "hosts", 0, 0, "WITHSCORES")
table.insert(out, first[2] and math.max(0, tonumber(first[2]) - NOW) or -1)
return out
""",
    # finish(token, id, url, host, outcome, answered, requests, worker, via,
    # want, lease_ms, targets): a visit is over: its outcome, and what it
    # led to admitted; then up to WANT more links leased, as ``lease`` gives
    # them, after "ok" (or "late" when the lease was no longer this worker's:
    # it ran out, and the link went to another).
    "finish": r"""
local token, id, url, host = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
redis.call("HINCRBY", META, "requests", tonumber(ARGV[9]))
local status = "late"
if held_by(id, token) then
  status = "ok"
  unlease(id, host)
  redis.call("HSET", P .. "o", id, ARGV[7])
  if ARGV[8] == "1" then redis.call("HSET", P .. "h:" .. host, "open", 1) end
  redis.call("HINCRBY", P .. "w", ARGV[10], 1)
  follow(id, url, ARGV[14], ARGV[11] == "1")
  ready(host)
  pending(-1)
end
local out = lease(token, tonumber(ARGV[12]), tonumber(ARGV[13]))
table.insert(out, 1, status)
return out
""",
    # release(token, id): a lease given back unvisited (its worker is stopping).
    "release": r"""
local host, entry = held_by(ARGV[4], ARGV[3])
if not host then return 0 end
unlease(ARGV[4], host)
redis.call("LPUSH", P .. "q:" .. host, entry)
redis.call("HINCRBY", bucket("issues", ARGV[4]), ARGV[4], -1)
ready(host)
return 1
""",
    # renew(token, lease_ms, id...): the worker is alive and still on these.
    "renew": r"""
local renewed = 0
for i = 5, #ARGV do
  if held_by(ARGV[i], ARGV[3]) then
    redis.call("ZADD", P .. "leases", "XX", NOW + tonumber(ARGV[4]), ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
""",
    # reap(max_issues): leases past their deadline (their worker died or was
    # cut off) go back to the head of their host's queue, or fail as lost.
    "reap": r"""
local expired = redis.call("ZRANGEBYSCORE", P .. "leases", "-inf", NOW, "LIMIT", 0, 1000)
for _, id in ipairs(expired) do
  local v = redis.call("HGET", P .. "lease", id)
  local host, entry = string.match(v or "", "^%S+ (%S+) (.*)$")
  if host then
    unlease(id, host)
    local issues = tonumber(redis.call("HGET", bucket("issues", id), id) or "1")
    if issues >= tonumber(ARGV[3]) then
      local k = string.match(entry, "^%d+ (%a)")
      redis.call("HSET", P .. "o", id, outcome("other: lost: " .. issues ..
                 " workers took it, none answered", k == "e" and "HEAD" or "GET"))
      redis.call("HINCRBY", META, "lost", 1)
      pending(-1)
    else
      redis.call("LPUSH", P .. "q:" .. host, entry)
      redis.call("HINCRBY", META, "reissued", 1)
    end
    ready(host)
  else
    redis.call("ZREM", P .. "leases", id)
  end
end
return #expired
""",
    # hold(host, until_ms): no request to HOST starts before UNTIL (Retry-After).
    "hold": r"""
local h = P .. "h:" .. ARGV[3]
local until_ms = math.max(tonumber(redis.call("HGET", h, "next") or "0"), tonumber(ARGV[4]))
redis.call("HSET", h, "next", until_ms)
if redis.call("ZSCORE", P .. "hosts", ARGV[3]) then
  redis.call("ZADD", P .. "hosts", until_ms, ARGV[3])
end
return until_ms
""",
    # respace(host): reserve the start of another request of a visit to HOST:
    # {ms to wait, dead or ""}.
    "respace": r"""
local h = P .. "h:" .. ARGV[3]
local s = redis.call("HMGET", h, "next", "delay", "dead")
local nxt, delay = tonumber(s[1] or "0"), math.max(DELAY, tonumber(s[2] or "0"))
local start = math.max(nxt, NOW)
if delay > 0 then redis.call("HSET", h, "next", start + delay) end
return {start - NOW, s[3] or ""}
""",
    # delay(host, ms): space HOST's requests (its robots.txt Crawl-delay).
    "delay": r"""
local h = P .. "h:" .. ARGV[3]
redis.call("HSET", h, "delay", math.max(DELAY, tonumber(ARGV[4])))
return 1
""",
    # settle(host, kind, message): HOST cannot be reached: every link queued
    # for it, and every one admitted later, fails the same way, unvisited.
    "settle": r"""
local host = ARGV[3]
local h = P .. "h:" .. host
if redis.call("HEXISTS", h, "dead") == 1 then return 0 end
redis.call("HSET", h, "dead", ARGV[4] .. "\t" .. ARGV[5])
local err = ARGV[4] .. ": " .. ARGV[5]
local q = P .. "q:" .. host
local settled = 0
while true do
  local entry = redis.call("LPOP", q)
  if not entry then break end
  local id, k = string.match(entry, "^(%d+) (%a)")
  redis.call("HSET", P .. "o", id, outcome(err, k == "e" and "HEAD" or "GET"))
  settled = settled + 1
end
redis.call("ZREM", P .. "hosts", host)
pending(-settled)
return settled
""",
    # stop(reason): the crawl is stopped for every worker (max-time): no more
    # leases; reason "" lifts the stop (the crawl's command is run again).
    "stop": r"""
if ARGV[3] == "" then redis.call("HDEL", META, "stopped"); return "" end
redis.call("HSETNX", META, "stopped", ARGV[3])
return redis.call("HGET", META, "stopped")
""",
}
