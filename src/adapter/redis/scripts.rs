//! The Lua scripts that decide every cluster transition, each on the one shard owning its keys,
//! and the parsing of their answers. Loaded with `EVALSHA` (falling back to `EVAL` once per
//! server, which also covers a restarted Redis that forgot its scripts).

use redis::Script;

use crate::adapter::{ChannelCounts, JoinOutcome, LeaveOutcome};

/// KEYS: socks, users, info, leaves. ARGV: `node:socket`, user id (`""` off presence), user_info
/// (`""` none). Returns {duplicate, occupied, member_added, subscription_count, user_count}, where
/// occupied and member_added are 2 when the transition undid a leave whose webhook still waits
/// out the leave delay on some node (its `leaves` field is taken, so that leave is not sent).
const JOIN: &str = r"
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
local subs = redis.call('HLEN', KEYS[1])
if added == 0 then
  return {1, 0, 0, subs, redis.call('HLEN', KEYS[2])}
end
local member_added = 0
if ARGV[2] ~= '' then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    member_added = 1
    if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[2], ARGV[3]) end
    if redis.call('HDEL', KEYS[4], 'u:' .. ARGV[2]) == 1 then member_added = 2 end
  end
end
local occupied = 0
if subs == 1 then
  occupied = 1
  if redis.call('HDEL', KEYS[4], 'c') == 1 then occupied = 2 end
end
return {0, occupied, member_added, subs, redis.call('HLEN', KEYS[2])}
";

/// KEYS: socks, users, info, leaves. ARGV: `node:socket`, hold (ms; 0: no leave delay).
/// Returns {not_found, vacated, member_removed, subscription_count, user_count, user ("" none)}.
/// With a hold, a vacancy or removal is also recorded in `leaves` (field `c`, or `u:<user>`)
/// until the node that holds its webhook confirms it, or a join takes it back (JOIN).
const LEAVE: &str = r"
local user = redis.call('HGET', KEYS[1], ARGV[1])
if not user then
  return {1, 0, 0, redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[2]), ''}
end
redis.call('HDEL', KEYS[1], ARGV[1])
local subs = redis.call('HLEN', KEYS[1])
local hold = tonumber(ARGV[2])
local removed = 0
if user ~= '' then
  if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
    redis.call('HDEL', KEYS[2], user)
    redis.call('HDEL', KEYS[3], user)
    removed = 1
    if hold > 0 then redis.call('HSET', KEYS[4], 'u:' .. user, 1) end
  end
end
local vacated = 0
if subs == 0 then
  vacated = 1
  if hold > 0 then redis.call('HSET', KEYS[4], 'c', 1) end
end
if hold > 0 and (vacated == 1 or removed == 1) then redis.call('PEXPIRE', KEYS[4], hold) end
return {0, vacated, removed, subs, redis.call('HLEN', KEYS[2]), user}
";

/// KEYS: socks, users. Returns {subscription_count, user_count}.
const COUNTS: &str = r"
return {redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[2])}
";

/// KEYS: users, info. Returns a flat {user, info ("" none), …}.
const ROSTER: &str = r"
local out = {}
for _, user in ipairs(redis.call('HKEYS', KEYS[1])) do
  out[#out + 1] = user
  out[#out + 1] = redis.call('HGET', KEYS[2], user) or ''
end
return out
";

/// KEYS: conns hash. ARGV: node, max (-1 none). Counts the new connection unless the sum of
/// every node's count is already at max. Returns 1 (counted) or 0 (over quota).
const ACQUIRE: &str = r"
local max = tonumber(ARGV[2])
if max >= 0 then
  local total = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
  if total >= max then return 0 end
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
";

/// KEYS: the user's signed-in set. ARGV: `node:socket`. Returns 1 when that was the user's
/// first signed-in socket anywhere.
const SIGN_IN: &str = r"
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 1 then return 1 end
return 0
";

/// KEYS: the user's signed-in set. ARGV: `node:socket`. Returns 1 when that was the user's
/// last signed-in socket anywhere.
const SIGN_OUT: &str = r"
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0
";

/// KEYS: the cache key. Returns {value or false, ttl in ms}.
const CACHE_GET: &str = r"
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
";

/// The loaded scripts (the SHA1 is computed once).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub join: Script,
    pub leave: Script,
    pub counts: Script,
    pub roster: Script,
    pub acquire: Script,
    pub sign_in: Script,
    pub sign_out: Script,
    pub cache_get: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
            counts: Script::new(COUNTS),
            roster: Script::new(ROSTER),
            acquire: Script::new(ACQUIRE),
            sign_in: Script::new(SIGN_IN),
            sign_out: Script::new(SIGN_OUT),
            cache_get: Script::new(CACHE_GET),
        }
    }
}

pub(crate) fn join_outcome((dup, occ, added, subs, users): (u8, u8, u8, u64, u64)) -> JoinOutcome {
    JoinOutcome {
        duplicate: dup == 1,
        occupied: occ >= 1,
        member_added: added >= 1,
        occupancy_resumed: occ == 2,
        membership_resumed: added == 2,
        subscription_count: subs,
        user_count: users,
    }
}

/// The outcome and the user the socket was recorded with.
pub(crate) fn leave_outcome(
    (nf, vac, removed, subs, users, user): (u8, u8, u8, u64, u64, String),
) -> (LeaveOutcome, Option<String>) {
    let outcome = LeaveOutcome {
        not_found: nf == 1,
        vacated: vac == 1,
        member_removed: removed == 1,
        subscription_count: subs,
        user_count: users,
    };
    (outcome, (!user.is_empty()).then_some(user))
}

pub(crate) fn counts((subs, users): (u64, u64)) -> ChannelCounts {
    ChannelCounts { subscription_count: subs, user_count: users }
}
