"""Agent state and queue entries in the database every worker shares (SQLite or PostgreSQL).

One view of which agent is free, whatever process asks: a call takes an agent with one
conditional ``UPDATE ... WHERE state = 'ready'`` inside a write transaction (SQLite: ``BEGIN
IMMEDIATE``, one writer at a time; PostgreSQL: row locks), so two workers never ring the same
agent. Queue order is the order of ``enqueued_at`` across workers: only the head of a queue (the
caller waiting longest there) may take an agent. Everything lives in the store, so a restarted
worker or ``serve`` rebuilds its view from it (and from the registrar, see ``registrar``).

The tables are the ACD's own (``acd_*``), created on first use beside the CRM's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    create_engine,
    event,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, make_url

from speech.events import AgentStatus
from speech.owner_only import owner_only_file
from telephony.acd.directory import Directory

metadata = MetaData()

agents_table = Table(
    "acd_agents", metadata,
    Column("agent_id", String(32), primary_key=True),
    Column("state", String(16), nullable=False, default=AgentStatus.LOGGED_OUT.value),
    Column("reason", String(64), nullable=False, default=""),
    Column("since", Float, nullable=False, default=0.0),  # when the current state began (epoch s)
    Column("idle_since", Float, nullable=False, default=0.0),
    Column("wrap_until", Float, nullable=False, default=0.0),
    Column("call_id", String(200), nullable=False, default=""),
    Column("contact", String(300), nullable=False, default=""),
    Column("registered", Boolean, nullable=False, default=False),
    Column("skills", String(500), nullable=False, default=""),
    Column("calls_taken", Integer, nullable=False, default=0),
)

queue_table = Table(
    "acd_queue", metadata,
    Column("call_id", String(200), primary_key=True),
    Column("queue", String(64), nullable=False, index=True),
    Column("enqueued_at", Float, nullable=False),
    Column("worker", String(64), nullable=False, default=""),
    # waiting, ringing (an agent is being rung), connected, abandoned, overflow, callback, lost
    Column("status", String(16), nullable=False, default="waiting"),
    Column("agent_id", String(32), nullable=False, default=""),
    Column("left_at", Float, nullable=False, default=0.0),
)

callbacks_table = Table(
    "acd_callbacks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(200), nullable=False),
    Column("queue", String(64), nullable=False),
    Column("caller", String(300), nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("done", Boolean, nullable=False, default=False),
)

supervision_table = Table(
    "acd_supervision", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(200), nullable=False, index=True),
    Column("supervisor_id", String(32), nullable=False),
    # listen, whisper, barge, left (``speech.events.SupervisorMode``)
    Column("mode", String(16), nullable=False),
    # pending (console asked), taken (the worker holding the call is on it), done, failed
    Column("status", String(16), nullable=False, default="pending", index=True),
    Column("reason", String(64), nullable=False, default=""),
    Column("origin", String(16), nullable=False, default="console"),  # console, dtmf, hangup, call_ended
    Column("worker", String(64), nullable=False, default=""),
    Column("requested_at", Float, nullable=False),
    Column("done_at", Float, nullable=False, default=0.0),
)
"""Supervision requests and their outcome: the channel between the console (in ``serve``) and
the worker holding the call (any process, any host sharing the database). The worker polls
for pending rows of the calls it holds; a change it makes by itself (a DTMF switch, the
supervisor hanging up) is written as a done row, so the latest done row per call and
supervisor is their current mode."""

WAITING = ("waiting", "ringing")


@dataclass(frozen=True, slots=True)
class AgentRow:
    agent_id: str
    state: AgentStatus
    reason: str = ""
    since: float = 0.0
    idle_since: float = 0.0
    wrap_until: float = 0.0
    call_id: str = ""
    contact: str = ""
    registered: bool = False
    skills: tuple[str, ...] = ()
    calls_taken: int = 0

    @property
    def available(self) -> bool:
        return self.state is AgentStatus.READY and self.registered and bool(self.contact)


@dataclass(frozen=True, slots=True)
class StateChange:
    """One agent's state moved (the caller of the store publishes it as ``AgentStateChanged``)."""

    agent_id: str
    state: AgentStatus
    previous: AgentStatus
    reason: str = ""
    call_id: str = ""


@dataclass(frozen=True, slots=True)
class Claim:
    """An agent taken for a call: ring ``contact``."""

    agent_id: str
    contact: str
    change: StateChange


@dataclass(frozen=True, slots=True)
class SupervisionRequest:
    """One row of ``acd_supervision``."""

    id: int
    call_id: str
    supervisor_id: str
    mode: str
    status: str
    reason: str = ""
    origin: str = "console"
    worker: str = ""
    requested_at: float = 0.0
    done_at: float = 0.0


SUPERVISION_FINAL = ("done", "failed")


@dataclass
class QueueSnapshot:
    """What a supervisor's queue view shows."""

    queue: str
    waiting: int = 0
    longest_wait_s: float = 0.0
    agents: dict[str, int] = field(default_factory=dict)
    """Agents with this skill by state."""
    callers: list[dict[str, Any]] = field(default_factory=list)
    """Waiting calls in order: call id, wait, status."""


PG_NETWORK_ARGS: dict[str, int] = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10,
                                   "keepalives_interval": 5, "keepalives_count": 3, "tcp_user_timeout": 15000}
"""libpq options: a database host cut off (from a worker host) fails a query within ~15 s
instead of hanging on TCP's retransmissions for ~15 min."""


class AcdStore:
    """The ACD tables at ``url``. Blocking: call from a thread (``asyncio.to_thread``)."""

    def __init__(self, url: str, *, clock: Any = time.time) -> None:
        self.url = url
        self._clock = clock
        self._engine: Engine | None = None

    # ---- set-up ------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._make_engine()
            metadata.create_all(self._engine)
        return self._engine

    def _make_engine(self) -> Engine:
        if not self.url.startswith("sqlite"):
            args = PG_NETWORK_ARGS if self.url.startswith("postgresql") else {}
            return create_engine(self.url, pool_pre_ping=True, isolation_level="READ COMMITTED", connect_args=args)
        owner_only_file(make_url(self.url).database)
        engine = create_engine(self.url, connect_args={"timeout": 30, "isolation_level": None})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # One writer at a time from the first statement: a read-then-claim cannot race.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _lock_agents(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE acd_agents IN SHARE ROW EXCLUSIVE MODE")

    # ---- directory and registrar -------------------------------------------------------------
    def sync_directory(self, directory: Directory, *, ready_on_register: bool = True) -> list[StateChange]:
        """Add agents new to the file, update skills and static contacts, log out removed ones.
        An agent with a static contact counts as registered (``ready_on_register``: ready)."""
        now = self._clock()
        changes: list[StateChange] = []
        with self._tx() as conn:
            self._lock_agents(conn)
            rows = {r.agent_id: r for r in self._rows(conn)}
            for agent in directory.agents:
                skills = ",".join(agent.skills)
                row = rows.get(agent.id)
                if row is None:
                    ready = ready_on_register and agent.contact is not None
                    state = AgentStatus.READY if ready else AgentStatus.LOGGED_OUT
                    if ready:
                        changes.append(StateChange(agent.id, state, AgentStatus.LOGGED_OUT, "registered"))
                    conn.execute(insert(agents_table).values(
                        agent_id=agent.id, state=state.value, reason="", since=now,
                        idle_since=now, wrap_until=0.0, call_id="", contact=agent.contact or "",
                        registered=agent.contact is not None, skills=skills, calls_taken=0))
                    continue
                values: dict[str, Any] = {"skills": skills}
                if agent.contact is not None:
                    values.update(contact=agent.contact, registered=True)
                conn.execute(update(agents_table).where(agents_table.c.agent_id == agent.id).values(**values))
            known = {a.id for a in directory.agents}
            for agent_id, row in rows.items():
                if agent_id not in known and row.state is not AgentStatus.LOGGED_OUT:
                    changes.append(self._set(conn, row, AgentStatus.LOGGED_OUT, "removed", now))
        return changes

    def set_registrations(self, contacts: dict[str, str], *, ready_on_register: bool,
                          static: Sequence[str] = ()) -> list[StateChange]:
        """The registrar's view: agent id → contact URI of every registered agent. Agents that
        registered may become ready; agents whose registration is gone are logged out (unless
        they have a static contact, ``static``)."""
        now = self._clock()
        changes: list[StateChange] = []
        with self._tx() as conn:
            self._lock_agents(conn)
            for row in self._rows(conn):
                if row.agent_id in static:
                    continue
                contact = contacts.get(row.agent_id, "")
                if contact:
                    if not row.registered or row.contact != contact:
                        conn.execute(update(agents_table).where(agents_table.c.agent_id == row.agent_id)
                                     .values(registered=True, contact=contact))
                    if ready_on_register and row.state is AgentStatus.LOGGED_OUT and not row.registered:
                        changes.append(self._set(conn, row, AgentStatus.READY, "registered", now))
                elif row.registered:
                    conn.execute(update(agents_table).where(agents_table.c.agent_id == row.agent_id)
                                 .values(registered=False, contact=""))
                    if row.state in (AgentStatus.READY, AgentStatus.NOT_READY, AgentStatus.WRAP_UP):
                        changes.append(self._set(conn, row, AgentStatus.LOGGED_OUT, "unregistered", now))
        return changes

    # ---- agent state -------------------------------------------------------------------------
    def agents(self) -> list[AgentRow]:
        """Every agent, with wrap-ups that are over shown as ready (``expire_wrap_up`` stores it)."""
        with self._tx() as conn:
            return self._rows(conn)

    def agent(self, agent_id: str) -> AgentRow | None:
        with self._tx() as conn:
            return self._row(conn, agent_id)

    def set_state(self, agent_id: str, state: AgentStatus, reason: str = "") -> StateChange | None:
        """The agent (console, feature code) asks for ``state``: ready, not ready or logged out.
        Refused (None) while ringing or on a call; a no-op when already there."""
        if state not in (AgentStatus.READY, AgentStatus.NOT_READY, AgentStatus.LOGGED_OUT):
            raise ValueError(f"an agent cannot set the state {state.value}")
        now = self._clock()
        with self._tx() as conn:
            self._lock_agents(conn)
            row = self._row(conn, agent_id)
            if row is None or row.state in (AgentStatus.RINGING, AgentStatus.ON_CALL):
                return None
            if row.state is state and row.reason == reason:
                return None
            return self._set(conn, row, state, reason, now)

    def expire_wrap_up(self) -> list[StateChange]:
        """Agents whose wrap-up time is over become ready."""
        now = self._clock()
        with self._tx() as conn:
            self._lock_agents(conn)
            return [self._set(conn, row, AgentStatus.READY, "wrap_up_done", now)
                    for row in self._rows(conn)
                    if row.state is AgentStatus.WRAP_UP and row.wrap_until <= now]

    def claim(self, call_id: str, queue: str, *, all_ready: bool = False,
              exclude: Sequence[str] = ()) -> list[Claim]:
        """For the head of ``queue``: take the longest-idle ready, registered agent with the skill
        (every one with ``all_ready``), set them ringing for ``call_id``. Empty when this call
        is not next in line or nobody is free."""
        now = self._clock()
        with self._tx() as conn:
            self._lock_agents(conn)
            self._expire(conn, now)
            head = conn.execute(
                select(queue_table.c.call_id).where(and_(queue_table.c.queue == queue,
                                                         queue_table.c.status.in_(WAITING)))
                .order_by(queue_table.c.enqueued_at, queue_table.c.call_id).limit(1)).scalar()
            if head is not None and head != call_id:
                return []
            free = [r for r in self._rows(conn)
                    if r.available and queue in r.skills and r.agent_id not in exclude]
            free.sort(key=lambda r: (r.idle_since, r.agent_id))
            claims = []
            for row in free if all_ready else free[:1]:
                done = conn.execute(update(agents_table).where(and_(
                    agents_table.c.agent_id == row.agent_id,
                    agents_table.c.state == AgentStatus.READY.value)).values(
                    state=AgentStatus.RINGING.value, reason="", since=now, call_id=call_id))
                if done.rowcount == 1:
                    change = StateChange(row.agent_id, AgentStatus.RINGING, row.state, "", call_id)
                    claims.append(Claim(row.agent_id, row.contact, change))
            if claims:
                conn.execute(update(queue_table).where(queue_table.c.call_id == call_id)
                             .values(status="ringing"))
            return claims

    def claim_agent(self, call_id: str, agent_id: str) -> Claim | None:
        """Take one named agent (a transfer to them), if ready and registered."""
        now = self._clock()
        with self._tx() as conn:
            self._lock_agents(conn)
            self._expire(conn, now)
            row = self._row(conn, agent_id)
            if row is None or not row.available:
                return None
            conn.execute(update(agents_table).where(agents_table.c.agent_id == agent_id).values(
                state=AgentStatus.RINGING.value, reason="", since=now, call_id=call_id))
            return Claim(agent_id, row.contact,
                         StateChange(agent_id, AgentStatus.RINGING, row.state, "", call_id))

    def unring(self, agent_id: str, call_id: str, *, no_answer: bool) -> StateChange | None:
        """The ring ended without a call: back to ready, or not ready (``no_answer``)."""
        state = AgentStatus.NOT_READY if no_answer else AgentStatus.READY
        return self._transition(agent_id, call_id, (AgentStatus.RINGING,), state,
                                "no_answer" if no_answer else "")

    def answered(self, agent_id: str, call_id: str) -> StateChange | None:
        return self._transition(agent_id, call_id, (AgentStatus.RINGING,), AgentStatus.ON_CALL, "")

    def call_ended(self, agent_id: str, call_id: str, wrap_up_s: float) -> StateChange | None:
        """The agent's call is over: wrap-up for ``wrap_up_s`` (0: ready at once)."""
        now = self._clock()
        state = AgentStatus.WRAP_UP if wrap_up_s > 0 else AgentStatus.READY
        with self._tx() as conn:
            self._lock_agents(conn)
            row = self._row(conn, agent_id)
            if row is None or row.call_id != call_id or row.state not in (AgentStatus.ON_CALL, AgentStatus.RINGING):
                return None
            change = self._set(conn, row, state, "", now)
            conn.execute(update(agents_table).where(agents_table.c.agent_id == agent_id).values(
                wrap_until=now + wrap_up_s, idle_since=now + wrap_up_s,
                call_id=call_id if wrap_up_s > 0 else "",
                calls_taken=row.calls_taken + 1))
            return change

    def recorded_call_started(self, agent_id: str, call_id: str, reason: str = "siprec") -> StateChange | None:
        """A ready agent is on a call someone else (a PBX) placed and we record (SIPREC): on_call
        with ``reason`` for it, so the ACD does not ring them while that call lasts. An agent in
        any other state is left as they are (None)."""
        now = self._clock()
        with self._tx() as conn:
            self._lock_agents(conn)
            self._expire(conn, now)
            row = self._row(conn, agent_id)
            if row is None or row.state is not AgentStatus.READY:
                return None
            change = self._set(conn, row, AgentStatus.ON_CALL, reason, now)
            conn.execute(update(agents_table).where(agents_table.c.agent_id == agent_id).values(call_id=call_id))
            return change

    def recorded_call_ended(self, agent_id: str, call_id: str) -> StateChange | None:
        """The recorded call (``recorded_call_started``) is over for the agent: ready again, as
        before it (the PBX's call is no ACD call: no wrap-up, not counted as taken)."""
        return self._transition(agent_id, call_id, (AgentStatus.ON_CALL,), AgentStatus.READY, "")

    def release_worker(self, worker: str, live_calls: Iterable[str] = ()) -> list[StateChange]:
        """A worker died: its waiting calls are lost and agents it was ringing or connecting are
        freed (ready; their calls ended with the worker). ``live_calls``: the other calls it held
        (its spool's), whose agents are freed too (a recorded SIPREC call is in no queue)."""
        now = self._clock()
        with self._tx() as conn:
            self._lock_agents(conn)
            calls = set(conn.execute(select(queue_table.c.call_id).where(and_(
                queue_table.c.worker == worker,
                queue_table.c.status.in_((*WAITING, "connected"))))).scalars())
            calls.update(c for c in live_calls if c)
            conn.execute(update(queue_table).where(and_(
                queue_table.c.worker == worker, queue_table.c.status.in_(WAITING)))
                .values(status="lost", left_at=now))
            self._end_supervision(conn, worker, now)
            return [self._set(conn, row, AgentStatus.READY, "worker_lost", now)
                    for row in self._rows(conn)
                    if row.call_id in calls and row.state in (AgentStatus.RINGING, AgentStatus.ON_CALL)]

    # ---- queue entries -----------------------------------------------------------------------
    def enqueue(self, call_id: str, queue: str, worker: str, *, enqueued_at: float | None = None) -> int:
        """Put the call at the end of ``queue`` (keeping its original time on an overflow or a
        re-queue); returns its position."""
        now = self._clock() if enqueued_at is None else enqueued_at
        with self._tx() as conn:
            exists = conn.execute(select(queue_table.c.call_id).where(queue_table.c.call_id == call_id)).scalar()
            values = dict(queue=queue, enqueued_at=now, worker=worker, status="waiting",
                          agent_id="", left_at=0.0)
            if exists:
                conn.execute(update(queue_table).where(queue_table.c.call_id == call_id).values(**values))
            else:
                conn.execute(insert(queue_table).values(call_id=call_id, **values))
            return self._position(conn, call_id, queue, now)

    def requeue(self, call_id: str) -> None:
        """After a ring that was not answered: waiting again, same place in line."""
        with self._tx() as conn:
            conn.execute(update(queue_table).where(and_(queue_table.c.call_id == call_id,
                                                        queue_table.c.status == "ringing"))
                         .values(status="waiting"))

    def position(self, call_id: str) -> int:
        """1 for the caller next in line; 0 when not waiting."""
        with self._tx() as conn:
            row = conn.execute(select(queue_table.c.queue, queue_table.c.enqueued_at, queue_table.c.status)
                               .where(queue_table.c.call_id == call_id)).first()
            if row is None or row.status not in WAITING:
                return 0
            return self._position(conn, call_id, row.queue, row.enqueued_at)

    def leave(self, call_id: str, status: str, agent_id: str = "") -> float:
        """The call left its queue (``connected``, ``abandoned``, ``overflow``, ``callback``);
        returns how long it waited."""
        now = self._clock()
        with self._tx() as conn:
            at = conn.execute(select(queue_table.c.enqueued_at).where(queue_table.c.call_id == call_id)).scalar()
            conn.execute(update(queue_table).where(queue_table.c.call_id == call_id)
                         .values(status=status, agent_id=agent_id, left_at=now))
            return max(0.0, now - at) if at is not None else 0.0

    def add_callback(self, call_id: str, queue: str, caller: str) -> None:
        with self._tx() as conn:
            conn.execute(insert(callbacks_table).values(call_id=call_id, queue=queue, caller=caller,
                                                        requested_at=self._clock(), done=False))

    def callbacks(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(select(callbacks_table).order_by(callbacks_table.c.id)).mappings()
            return [dict(r) for r in rows]

    def expected_wait_s(self, queue: str, position: int, default_handle_s: float) -> float:
        """Position × average handle time ÷ agents serving the queue (logged in), from the
        last connected waits when there are some."""
        with self._tx() as conn:
            agents = [r for r in self._rows(conn) if queue in r.skills and r.registered
                      and r.state is not AgentStatus.LOGGED_OUT]
            waits = list(conn.execute(
                select(queue_table.c.left_at - queue_table.c.enqueued_at)
                .where(and_(queue_table.c.queue == queue, queue_table.c.status == "connected"))
                .order_by(queue_table.c.left_at.desc()).limit(20)).scalars())
        if waits:
            return max(0.0, float(sum(waits)) / len(waits)) * max(1, position)
        return default_handle_s * max(1, position) / max(1, len(agents))

    def snapshot(self, queue: str) -> QueueSnapshot:
        now = self._clock()
        snap = QueueSnapshot(queue)
        with self._tx() as conn:
            waiting = conn.execute(select(queue_table.c.call_id, queue_table.c.enqueued_at, queue_table.c.status)
                                   .where(and_(queue_table.c.queue == queue, queue_table.c.status.in_(WAITING)))
                                   .order_by(queue_table.c.enqueued_at, queue_table.c.call_id)).all()
            rows = self._rows(conn)
        snap.waiting = len(waiting)
        snap.longest_wait_s = max((now - w.enqueued_at for w in waiting), default=0.0)
        snap.callers = [{"call_id": w.call_id, "wait_s": round(now - w.enqueued_at, 1), "status": w.status}
                        for w in waiting]
        for row in rows:
            if queue in row.skills:
                snap.agents[row.state.value] = snap.agents.get(row.state.value, 0) + 1
        return snap

    def queues(self) -> list[str]:
        """Every queue an agent serves or a call waited in."""
        with self._tx() as conn:
            names = set(conn.execute(select(queue_table.c.queue).distinct()).scalars())
            for row in self._rows(conn):
                names.update(row.skills)
        return sorted(names)

    def abandoned(self, queue: str | None = None) -> list[dict[str, Any]]:
        """Calls that hung up while waiting, with their wait."""
        with self._tx() as conn:
            q = select(queue_table.c.call_id, queue_table.c.queue,
                       (queue_table.c.left_at - queue_table.c.enqueued_at).label("wait_s")).where(
                queue_table.c.status == "abandoned")
            if queue is not None:
                q = q.where(queue_table.c.queue == queue)
            return [dict(r) for r in conn.execute(q).mappings()]

    # ---- supervision -------------------------------------------------------------------------
    def request_supervision(self, call_id: str, supervisor_id: str, mode: str) -> int:
        """The console asks that ``supervisor_id`` be on ``call_id`` in ``mode`` (``left``:
        off it); returns the request id to follow with ``supervision_request``."""
        with self._tx() as conn:
            key = conn.execute(insert(supervision_table).values(
                call_id=call_id, supervisor_id=supervisor_id, mode=mode, status="pending", reason="",
                origin="console", worker="", requested_at=self._clock(), done_at=0.0)).inserted_primary_key
            assert key is not None
            return int(key[0])

    def take_supervision(self, call_ids: Sequence[str], worker: str) -> list[SupervisionRequest]:
        """Pending requests for the calls a worker holds, marked taken by it (each is taken by
        one worker only, and not after the console gave up on it)."""
        if not call_ids:
            return []
        with self._tx() as conn:
            rows = [self._supervision_row(r) for r in conn.execute(
                select(supervision_table).where(and_(supervision_table.c.status == "pending",
                                                     supervision_table.c.call_id.in_(list(call_ids))))
                .order_by(supervision_table.c.id)).mappings()]
            taken = []
            for row in rows:
                done = conn.execute(update(supervision_table).where(and_(
                    supervision_table.c.id == row.id, supervision_table.c.status == "pending"))
                    .values(status="taken", worker=worker))
                if done.rowcount == 1:
                    taken.append(replace(row, status="taken", worker=worker))
            return taken

    def finish_supervision(self, request_id: int, *, ok: bool, reason: str = "") -> None:
        """The worker did what a taken request asked (``ok``) or could not (``reason``)."""
        with self._tx() as conn:
            conn.execute(update(supervision_table).where(supervision_table.c.id == request_id).values(
                status="done" if ok else "failed", reason=reason, done_at=self._clock()))

    def expire_supervision(self, request_id: int, reason: str = "not_live") -> bool:
        """Fail a request no worker took (no live call of that id); False if one took it."""
        with self._tx() as conn:
            done = conn.execute(update(supervision_table).where(and_(
                supervision_table.c.id == request_id, supervision_table.c.status == "pending"))
                .values(status="failed", reason=reason, done_at=self._clock()))
            return done.rowcount == 1

    def note_supervision(self, call_id: str, supervisor_id: str, mode: str, origin: str, worker: str) -> None:
        """A change the worker made by itself (keypad switch, hang-up, end of call)."""
        now = self._clock()
        with self._tx() as conn:
            conn.execute(insert(supervision_table).values(
                call_id=call_id, supervisor_id=supervisor_id, mode=mode, status="done", reason="",
                origin=origin, worker=worker, requested_at=now, done_at=now))

    def supervision_request(self, request_id: int) -> SupervisionRequest | None:
        with self._tx() as conn:
            r = conn.execute(select(supervision_table).where(supervision_table.c.id == request_id)).mappings().first()
            return None if r is None else self._supervision_row(r)

    def supervision(self, call_id: str | None = None) -> list[SupervisionRequest]:
        """Who supervises which call now, in what mode: the latest done row per call and
        supervisor, unless it is ``left``."""
        with self._tx() as conn:
            q = select(supervision_table).where(supervision_table.c.status == "done")
            if call_id is not None:
                q = q.where(supervision_table.c.call_id == call_id)
            latest: dict[tuple[str, str], SupervisionRequest] = {}
            for r in conn.execute(q.order_by(supervision_table.c.id)).mappings():
                row = self._supervision_row(r)
                latest[(row.call_id, row.supervisor_id)] = row
        return [r for r in latest.values() if r.mode != "left"]

    def _end_supervision(self, conn: Connection, worker: str, now: float) -> None:
        """A dead worker's supervisors are off its calls (their legs died with it); its
        unfinished requests failed."""
        conn.execute(update(supervision_table).where(and_(
            supervision_table.c.worker == worker, supervision_table.c.status == "taken"))
            .values(status="failed", reason="worker_lost", done_at=now))
        latest: dict[tuple[str, str], Any] = {}
        for r in conn.execute(select(supervision_table).where(supervision_table.c.status == "done")
                              .order_by(supervision_table.c.id)).mappings():
            latest[(r["call_id"], r["supervisor_id"])] = r
        for (call_id, sup_id), r in latest.items():
            if r["worker"] == worker and r["mode"] != "left":
                conn.execute(insert(supervision_table).values(
                    call_id=call_id, supervisor_id=sup_id, mode="left", status="done", reason="",
                    origin="worker_lost", worker=worker, requested_at=now, done_at=now))

    @staticmethod
    def _supervision_row(r: Any) -> SupervisionRequest:
        return SupervisionRequest(
            id=int(r["id"]), call_id=r["call_id"], supervisor_id=r["supervisor_id"], mode=r["mode"],
            status=r["status"], reason=r["reason"], origin=r["origin"], worker=r["worker"],
            requested_at=r["requested_at"], done_at=r["done_at"])

    # ---- internals ---------------------------------------------------------------------------
    def _transition(self, agent_id: str, call_id: str, allowed: tuple[AgentStatus, ...],
                    state: AgentStatus, reason: str) -> StateChange | None:
        now = self._clock()
        with self._tx() as conn:
            self._lock_agents(conn)
            row = self._row(conn, agent_id)
            if row is None or row.call_id != call_id or row.state not in allowed:
                return None
            change = self._set(conn, row, state, reason, now)
            if state is AgentStatus.READY:
                conn.execute(update(agents_table).where(agents_table.c.agent_id == agent_id)
                             .values(call_id=""))
            return change

    def _expire(self, conn: Connection, now: float) -> None:
        conn.execute(update(agents_table).where(and_(
            agents_table.c.state == AgentStatus.WRAP_UP.value, agents_table.c.wrap_until <= now))
            .values(state=AgentStatus.READY.value, reason="wrap_up_done", since=now, call_id=""))

    def _set(self, conn: Connection, row: AgentRow, state: AgentStatus, reason: str, now: float) -> StateChange:
        values: dict[str, Any] = {"state": state.value, "reason": reason, "since": now}
        if state is AgentStatus.READY and row.state is not AgentStatus.READY:
            values["idle_since"] = now
            values["call_id"] = ""
        if state in (AgentStatus.LOGGED_OUT, AgentStatus.NOT_READY):
            values["call_id"] = ""
        conn.execute(update(agents_table).where(agents_table.c.agent_id == row.agent_id).values(**values))
        return StateChange(row.agent_id, state, row.state, reason, row.call_id)

    def _position(self, conn: Connection, call_id: str, queue: str, at: float) -> int:
        ahead = conn.execute(select(queue_table.c.call_id).where(and_(
            queue_table.c.queue == queue, queue_table.c.status.in_(WAITING),
            or_(queue_table.c.enqueued_at < at,
                and_(queue_table.c.enqueued_at == at, queue_table.c.call_id < call_id))))).all()
        return len(ahead) + 1

    def _rows(self, conn: Connection) -> list[AgentRow]:
        now = self._clock()
        return [self._to_row(r, now) for r in conn.execute(select(agents_table).order_by(agents_table.c.agent_id)).mappings()]

    def _row(self, conn: Connection, agent_id: str) -> AgentRow | None:
        r = conn.execute(select(agents_table).where(agents_table.c.agent_id == agent_id)).mappings().first()
        return None if r is None else self._to_row(r, self._clock())

    @staticmethod
    def _to_row(r: Any, now: float) -> AgentRow:
        state = AgentStatus(r["state"])
        if state is AgentStatus.WRAP_UP and r["wrap_until"] <= now:
            state = AgentStatus.READY
        return AgentRow(
            agent_id=r["agent_id"], state=state, reason=r["reason"], since=r["since"],
            idle_since=r["idle_since"], wrap_until=r["wrap_until"], call_id=r["call_id"],
            contact=r["contact"], registered=bool(r["registered"]),
            skills=tuple(s for s in r["skills"].split(",") if s), calls_taken=r["calls_taken"])
