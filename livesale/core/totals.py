"""The totals engine: running figures of live sessions in Redis.

This module is the only code that knows livesale's Redis key names and Lua
scripts. SQL is the system of record; Redis holds a projection that can be
thrown away and rebuilt at any time.

Keys of one session share the hash tag ``{s:<id>}`` so both scripts run
unchanged on Redis Cluster:

``ls:{s:<id>}:totals``   hash: the running figures, ``version``, ``updated_at``
                         and ``snap``, the SQL snapshot the figures were
                         rebuilt from; breakdowns as ``<prefix>:<key>`` fields
                         (``pq:``/``pa:`` product, ``ro:``/``ra:`` region,
                         ``ma:``/``mo:`` minute, ``co:``/``ca:`` channel);
``ls:{s:<id>}:pending``  list: changes that arrived while the figures were
                         missing or being rebuilt;
``ls:{s:<id>}:rebuild``  string: the rebuild lock (a random token).

Why it never double-counts: every write transaction has a transaction id
(``core.db``). A rebuild records which ids its SQL snapshot could see. A
change that reaches Redis after the rebuild is skipped if the snapshot
already saw its transaction, and applied otherwise. Changes that arrive
while the figures are missing, or while a rebuild holds the lock, are parked
in ``pending`` and replayed by the rebuild under the same rule. A rebuild
whose lock disappeared (a FLUSHALL, an expiry) starts over from a fresh
snapshot, so a rebuild can never write figures older than what Redis shows.

A change is missing from Redis only if its writer stopped between the SQL
commit and the script call: the process died (a crash, ``kill -9``) or the
call failed (Redis unreachable). Neither can be seen from Redis, so each
engine only *trusts* figures it has verified: the first use of a session by
an engine rebuilds them from a snapshot taken after the engine started, and
a failed script call withdraws the trust until the next rebuild. A dead
process is always followed by a new one (gunicorn replaces workers, an
operator restarts the server), and that new engine's first use repairs
whatever the dead one left out, for every process.

Another server answering for the data (a Sentinel failover, a cluster master
replaced by its replica, a restart) may have lost the last changes the old
one acknowledged: replication is asynchronous. Each engine looks at most
once a second (``watch_s``) at who answers (``redis_urls.server_identity``);
when it changed, the engine withdraws the figures of every session it
vouched for, as after a failed call, so that every process rebuilds them
from SQL.

``version`` is ``max(previous + 1, Redis time in µs)``: it rises with every
change, and still rises after Redis lost everything, because it follows the
clock (clients ignore versions older than the one they show).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Sequence

import redis
import redis.cluster

from .. import redis_urls
from .db import Snapshot
from .errors import Unavailable
from .figures import Figures

_VISIBLE_LUA = """
local function visible(snap, txid)
  if not snap then return false end
  local xmin, xmax, xip = string.match(snap, '^(%d+):(%d+):(.*)$')
  xmin = tonumber(xmin)
  xmax = tonumber(xmax)
  if txid < xmin then return true end
  if txid >= xmax then return false end
  for x in string.gmatch(xip, '%d+') do
    if tonumber(x) == txid then return false end
  end
  return true
end
local function next_version(current)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local v = (tonumber(current) or 0) + 1
  if now > v then v = now end
  return v
end
"""

# KEYS: totals, pending, lock. ARGV: txid, updated_at_ms, then field/increment pairs.
_APPLY_LUA = _VISIBLE_LUA + """
local parked = false
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RPUSH', KEYS[2], cjson.encode(ARGV))
  parked = true
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if not parked then redis.call('RPUSH', KEYS[2], cjson.encode(ARGV)) end
  return {0}
end
local state = redis.call('HMGET', KEYS[1], 'snap', 'version')
if not visible(state[1], tonumber(ARGV[1])) then
  for i = 3, #ARGV, 2 do
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  redis.call('HSET', KEYS[1], 'version', next_version(state[2]), 'updated_at', ARGV[2])
end
return {1, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: totals, pending, lock. ARGV: token, snap, updated_at_ms, then field/value pairs.
_WRITE_LUA = _VISIBLE_LUA + """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {0} end
local version = next_version(redis.call('HGET', KEYS[1], 'version'))
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'snap', ARGV[2], 'updated_at', ARGV[3])
local chunk = {}
for i = 4, #ARGV do
  chunk[#chunk + 1] = ARGV[i]
  if #chunk >= 2000 then
    redis.call('HSET', KEYS[1], unpack(chunk))
    chunk = {}
  end
end
if #chunk > 0 then redis.call('HSET', KEYS[1], unpack(chunk)) end
for _, item in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local change = cjson.decode(item)
  if not visible(ARGV[2], tonumber(change[1])) then
    for i = 3, #change, 2 do
      redis.call('HINCRBY', KEYS[1], change[i], change[i + 1])
    end
    version = version + 1
  end
end
redis.call('HSET', KEYS[1], 'version', version)
redis.call('DEL', KEYS[2], KEYS[3])
return {1, redis.call('HGETALL', KEYS[1])}
"""

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# Take the lease if free, or renew it if ours. KEYS: lease. ARGV: token, ttl_ms.
_LEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

#: Sessions whose totals changed since the last push tick (a set of ids).
#: Not hash-tagged: it is touched in its own command, never inside a script.
DIRTY_KEY = "ls:changed"
#: The lease of the process whose tick pushes totals to every viewer.
TICKER_KEY = "ls:ticker"
#: How many recent orders a session's feed keeps, and takes from one request.
FEED_LENGTH = 200
FEED_PER_CHANGE = 20


@dataclasses.dataclass(frozen=True, slots=True)
class FeedEntry:
    """One sold order as the viewers' ticker shows it: no buyer, no order id."""

    sku: str
    quantity: int
    region: str
    at_ms: int
    id: str = ""  # the stream id, set when read back

    def fields(self) -> dict[str, str | int]:
        return {"sku": self.sku, "q": self.quantity, "r": self.region, "t": self.at_ms}

    @classmethod
    def from_stream(cls, entry_id: bytes | str, fields: dict[bytes, bytes]) -> FeedEntry:
        get = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
               for k, v in fields.items()}
        return cls(
            sku=get["sku"], quantity=int(get["q"]), region=get["r"], at_ms=int(get["t"]),
            id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        )


def _feed_key(session_id: int) -> str:
    return f"ls:{{s:{session_id}}}:feed"


@dataclasses.dataclass(frozen=True, slots=True)
class LiveTotals:
    """Figures as Redis holds them, with their version."""

    figures: Figures
    version: int
    updated_at_ms: int


def _keys(session_id: int) -> list[str]:
    # The hash tag keeps a session's keys in one Cluster slot.
    tag = f"ls:{{s:{session_id}}}"
    return [f"{tag}:totals", f"{tag}:pending", f"{tag}:rebuild"]


def _fields(figures: Figures) -> list[str | int]:
    """Figures as a flat list of hash fields and values."""
    out: list[str | int] = ["amount_fen", figures.amount_fen, "orders", figures.orders, "items", figures.items]
    for sku, (quantity, amount) in figures.by_product.items():
        out += [f"pq:{sku}", quantity, f"pa:{sku}", amount]
    for region, (count, amount) in figures.by_region.items():
        out += [f"ro:{region}", count, f"ra:{region}", amount]
    for minute, (amount, count) in figures.by_minute.items():
        out += [f"ma:{minute}", amount, f"mo:{minute}", count]
    # By channel: an order adds two more fields to the same HINCRBY loop of the same script call
    # (a batch adds two per channel it sold on), so no extra round trip and no change to the scripts.
    for channel, (count, amount) in figures.by_channel.items():
        out += [f"co:{channel}", count, f"ca:{channel}", amount]
    return out


#: Hash field prefixes: ``<prefix>:<key>`` holds one of the two figures of a breakdown's entry.
_PREFIXED = {
    "pq": ("by_product", 0), "pa": ("by_product", 1),
    "ro": ("by_region", 0), "ra": ("by_region", 1),
    "ma": ("by_minute", 0), "mo": ("by_minute", 1),
    "co": ("by_channel", 0), "ca": ("by_channel", 1),
}


def _parse(flat: list[bytes]) -> LiveTotals:
    figures = Figures()
    version = updated = 0
    for i in range(0, len(flat), 2):
        name = flat[i].decode()
        raw = flat[i + 1]
        if name == "snap":
            continue
        value = int(raw)
        if name == "version":
            version = value
        elif name == "updated_at":
            updated = value
        elif name in ("amount_fen", "orders", "items"):
            setattr(figures, name, value)
        else:
            prefix, key = name[:2], name[3:]
            attr, index = _PREFIXED[prefix]
            table = getattr(figures, attr)
            slot = table.setdefault(int(key) if attr == "by_minute" else key, [0, 0])
            slot[index] = value
    return LiveTotals(figures=figures.without_empty(), version=version, updated_at_ms=updated)


def _snap_text(snapshot: Snapshot) -> str:
    return f"{snapshot.xmin}:{snapshot.xmax}:{','.join(map(str, snapshot.xip))}"


class TotalsEngine:
    """Running totals of live sessions, kept in Redis."""

    def __init__(
        self, client: redis.Redis | redis.cluster.RedisCluster, *, lock_ttl_s: float = 20.0, wait_s: float = 30.0,
        on_rebuild: Callable[[], None] | None = None, watch_s: float = 1.0,
    ):
        # wait_s > lock_ttl_s: if a rebuilder dies holding the lock, waiters
        # outlast the lock and take over instead of failing.
        self.redis = client
        self._cluster = redis_urls.is_cluster(client)
        self._lock_ttl_ms = int(lock_ttl_s * 1000)
        self._wait_s = wait_s
        self._apply = client.register_script(_APPLY_LUA)
        self._write = client.register_script(_WRITE_LUA)
        self._release = client.register_script(_RELEASE_LUA)
        self._lease = client.register_script(_LEASE_LUA)
        #: Sessions whose figures this engine rebuilt itself, with no failed
        #: script call of its own since (see ``verified``).
        self._verified: set[int] = set()
        #: Failed script calls so far; a rebuild verifies only if none happened during it.
        self._failures = 0
        #: Sessions whose change may or may not have reached Redis (a failed script call):
        #: their figures are withdrawn for every process as soon as Redis answers again.
        self._suspect: set[int] = set()
        #: Called after each rebuild that wrote figures (the metrics count them).
        self._on_rebuild = on_rebuild
        #: Who answered last time we looked (``_watch_server``), and when we look next.
        self._watch_s = watch_s
        self._identity: object = None
        self._watch_at = 0.0

    def verified(self, session_id: int) -> bool:
        """Whether this engine vouches that Redis has every change committed so far.

        False until the engine has rebuilt the session itself (a new process
        may be replacing one that died between a commit and its script call)
        and again after one of its script calls failed. Callers then rebuild
        (``rebuild`` without ``force`` does it), which restores the trust.
        """
        return session_id in self._verified

    def invalidate(self, *, session_id: int) -> None:
        """Throw the running figures away after a write transaction whose outcome is unknown.

        A write that failed may still have committed (the database went away
        during COMMIT, after making it durable): SQL may then hold a change
        that Redis never got, and a retry of it changes nothing. Without the
        figures (and without a rebuild lock, so a rebuild under way starts
        over), every process rebuilds them from SQL on its next use, as after
        a flush; parked changes stay for that rebuild. If Redis cannot be
        reached either, this process at least stops vouching for them.
        """
        self._verified.discard(session_id)
        keys = _keys(session_id)
        try:
            self.redis.delete(keys[0], keys[2])
        except redis.RedisError:
            self._suspect.add(session_id)  # withdrawn on this engine's next call that reaches Redis

    def _settle_suspects(self) -> None:
        """Withdraw the figures of sessions whose change failed midway, once Redis answers.

        Until then other processes, which still vouch for the figures, would
        serve them without that change (it failed, say, during a freeze);
        after the withdrawal every process rebuilds from SQL, which counts
        the change once whether or not it reached Redis in the end.
        """
        for session_id in list(self._suspect):
            keys = _keys(session_id)
            try:
                self.redis.delete(keys[0], keys[2])
            except redis.RedisError:
                return
            self._suspect.discard(session_id)

    def _watch_server(self) -> None:
        """At most every ``watch_s``: if another server now answers for the data, withdraw the figures
        this engine vouched for (it may have lost changes the old one acknowledged).

        Called after a call that reached Redis, so that a Redis that does not answer costs its
        callers no second timeout; callers that rely on ``verified`` (orders after ``apply``,
        ``rebuild`` after ``read``) look at it after this ran."""
        now = time.monotonic()
        if now < self._watch_at:
            return
        self._watch_at = now + self._watch_s
        try:
            identity = redis_urls.server_identity(self.redis)
        except redis.RedisError:
            return  # the call that follows says so; look again next time
        if self._identity is not None and identity != self._identity:
            self._suspect |= self._verified
            self._verified.clear()
            self._settle_suspects()  # now, before this process rebuilds any of them itself
        self._identity = identity

    def apply(
        self, *, session_id: int, txid: int, delta: Figures, feed: Sequence[FeedEntry] = ()
    ) -> LiveTotals | None:
        """Add one committed write transaction's change; ``None`` if the figures are missing.

        A ``None`` means the change was parked: the caller must ``rebuild``,
        which counts it exactly once. In the same round trip the session is
        marked changed for the next push tick and ``feed`` (new orders for the
        viewers' ticker) is appended to the session's feed.
        """
        args: list[str | int] = [txid, int(time.time() * 1000)]
        args += _fields(delta)
        try:
            if self._suspect:
                self._settle_suspects()
            result = self._send_change(session_id, args, feed)
        except BaseException as exc:
            # The change may or may not have reached Redis: stop trusting the
            # figures until a rebuild (which counts it exactly once either way).
            self._failures += 1
            self._verified.discard(session_id)
            self._suspect.add(session_id)
            if isinstance(exc, redis.RedisError):
                raise Unavailable("the totals store (Redis) is unavailable") from exc
            raise
        self._watch_server()  # after the call: a Redis that does not answer costs no second wait
        return _parse(result[1]) if result[0] == 1 else None

    def _send_change(self, session_id: int, args: list[str | int], feed: Sequence[FeedEntry]) -> list:
        """The apply script, the changed mark and the feed entries: one round trip on one server."""
        keys = _keys(session_id)
        pipe = self.redis.pipeline(transaction=False)
        if self._cluster:
            # redis-py's cluster pipeline refuses EVALSHA: the script goes first on its own (the
            # Script loads itself where needed), then the rest in one pipeline (a round trip per
            # master it touches: the changed set lives on another slot than the session's keys).
            result = self._apply(keys=keys, args=args)
        else:
            # EVALSHA straight into the pipeline: a registered Script in a pipeline costs an
            # extra round trip (SCRIPT EXISTS) on every execute. If Redis does not know the
            # script (restarted, SCRIPT FLUSH), only that command failed — the others ran —
            # and it is sent again on its own, which loads the script.
            pipe.evalsha(self._apply.sha, len(keys), *keys, *args)
        pipe.sadd(DIRTY_KEY, session_id)
        for entry in feed[-FEED_PER_CHANGE:]:
            pipe.xadd(_feed_key(session_id), entry.fields(), maxlen=FEED_LENGTH, approximate=True)
        replies = pipe.execute(raise_on_error=False)
        if self._cluster:
            replies = [result, *replies]
        for reply in replies[1:]:
            if isinstance(reply, Exception):
                raise reply
        result = replies[0]
        if isinstance(result, redis.exceptions.NoScriptError):
            result = self._apply(keys=keys, args=args)
        elif isinstance(result, Exception):
            raise result
        return result

    # --- live push: which sessions changed, what was sold, who ticks ---------

    def mark_changed(self, *, session_id: int) -> None:
        """Have the next push tick send this session's totals (e.g. after it ended)."""
        try:
            self.redis.sadd(DIRTY_KEY, session_id)
        except redis.RedisError as exc:
            raise Unavailable("the totals store (Redis) is unavailable") from exc

    def take_changed(self, *, limit: int = 1000) -> list[int]:
        """Sessions changed since the last call, removed from the set (one tick's work)."""
        popped = self.redis.spop(DIRTY_KEY, limit) or []
        return sorted(int(x) for x in popped)

    def read_feed(self, *, session_id: int, after: str | None = None, count: int = 20) -> list[FeedEntry]:
        """The newest ``count`` feed entries, oldest first; only those after id ``after`` if given."""
        key = _feed_key(session_id)
        if after is None:
            raw = list(reversed(self.redis.xrevrange(key, count=count)))
        else:
            raw = self.redis.xrange(key, min=f"({after}", count=count)
        return [FeedEntry.from_stream(entry_id, fields) for entry_id, fields in raw]

    def hold_ticker(self, *, token: str, ttl_ms: int) -> bool:
        """Take or renew the lease of the one process that pushes totals; False if another holds it."""
        if self._suspect:  # every process ticks: a failed change is withdrawn within a tick of Redis's return
            self._settle_suspects()
        held = bool(self._lease(keys=[TICKER_KEY], args=[token, ttl_ms]))
        self._watch_server()
        return held

    def read(self, *, session_id: int) -> LiveTotals | None:
        """The running figures, or ``None`` if Redis does not have them."""
        try:
            if self._suspect:
                self._settle_suspects()
            flat = self.redis.execute_command("HGETALL", _keys(session_id)[0])
        except redis.RedisError as exc:
            raise Unavailable("the totals store (Redis) is unavailable") from exc
        self._watch_server()
        if not flat:
            return None
        if isinstance(flat, dict):  # RESP3 clients answer with a mapping
            flat = [x for pair in flat.items() for x in pair]
        return _parse(flat)

    def rebuild(
        self,
        *,
        session_id: int,
        load: Callable[[], tuple[Snapshot, Figures]],
        force: bool = False,
    ) -> LiveTotals:
        """Make Redis hold the figures of ``load()`` plus every change since.

        Without ``force``, figures already present are returned as they are
        if this engine has ``verified`` them; unverified figures are rebuilt
        (or, while someone else holds the rebuild lock, returned as they are
        and verified on a later call). ``load`` must return the SQL snapshot
        and the figures read under it.
        """
        keys = _keys(session_id)
        deadline = time.monotonic() + self._wait_s
        while True:
            current = None
            if not force:
                current = self.read(session_id=session_id)
                if current is not None and session_id in self._verified:
                    return current
            token = secrets.token_hex(16)
            try:
                locked = self.redis.set(keys[2], token, nx=True, px=self._lock_ttl_ms)
            except redis.RedisError as exc:
                raise Unavailable("the totals store (Redis) is unavailable") from exc
            if locked:
                failures = self._failures
                try:
                    snapshot, figures = load()
                    args: list[str | int] = [token, _snap_text(snapshot), int(time.time() * 1000)]
                    result = self._write(keys=keys, args=args + _fields(figures))
                except BaseException as exc:
                    self._release_quietly(keys[2], token)
                    if isinstance(exc, redis.RedisError):
                        raise Unavailable("the totals store (Redis) is unavailable") from exc
                    raise
                if result[0] == 1:
                    if self._on_rebuild is not None:
                        self._on_rebuild()
                    self._mark_quietly(session_id)
                    # A script call of ours that failed meanwhile may belong to a
                    # commit our snapshot did not see: then stay unverified.
                    if self._failures == failures:
                        self._verified.add(session_id)
                    return _parse(result[1])
                # The lock vanished under us (flushed or expired): our snapshot
                # may be older than changes applied since, so start over.
                continue
            if current is not None:
                # Another process is rebuilding: these figures serve for now.
                return current
            if time.monotonic() > deadline:
                raise Unavailable("totals are being rebuilt; try again shortly")
            # Another process is rebuilding the missing figures; its result serves us too.
            force = False
            time.sleep(0.01)

    def clock_us(self) -> int:
        """Redis's clock in µs (what versions follow), or this host's if Redis is down."""
        try:
            seconds, micros = self.redis.time()
            return int(seconds) * 1_000_000 + int(micros)
        except redis.RedisError:
            return time.time_ns() // 1000

    def discard(self, *, session_id: int) -> None:
        """Forget a session's running figures (its results now live in SQL)."""
        self._verified.discard(session_id)
        try:
            self.redis.delete(*_keys(session_id), _feed_key(session_id))
        except redis.RedisError:
            pass  # nothing reads them any more; an orphan costs only memory

    def _mark_quietly(self, session_id: int) -> None:
        try:
            self.redis.sadd(DIRTY_KEY, session_id)
        except redis.RedisError:
            pass  # a rebuild changes no figure; viewers just miss a version bump

    def _release_quietly(self, key: str, token: str) -> None:
        try:
            self._release(keys=[key], args=[token])
        except redis.RedisError:
            pass
