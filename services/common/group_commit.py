"""Group commit: concurrent requests of one kind share one transaction.

Every HTTP request is a worker in its own green thread, and a small write (a placement) cost more in its BEGIN,
COMMIT, outbox INSERT and per-statement client CPU than in its own rows. `GroupCommit(run_group)` gives each
worker `submit(value)`: the value joins those submitted meanwhile, and one committer per process (a green thread)
runs `run_group(session, group)` for all of them in ONE transaction, then commits.

- `run_group` returns one outcome per item, in order: its result, or the exception that item alone answers (a
  refusal by the rules). A refusal must come before that item writes anything; the other items go on.
- Each worker gets its outcome only after the COMMIT: a success answered means committed.
- Any exception out of `run_group` (a deadlock, a serialization failure, a constraint, a bug) fails the group: it
  is rolled back, and each item runs again alone in a transaction of its own, so that one bad item never fails
  another. A failed COMMIT is not tried again (it may have committed): each item answers its error.
- No waiting is added: the committer takes whatever waits when it is free. Requests that arrive while a group is
  in the database form the next group, so groups grow with the load, and an idle process commits one at once.
- The code of each item runs in the context of the worker that submitted it (`Submitted.within`): its
  correlation (the events it publishes) and its log context.
"""

import contextvars
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from eventlet.event import Event as Done
from eventlet.queue import LightQueue
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session

from services.common.database import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

MAX_GROUP = 100  # items per transaction at most: a bigger group holds its locks longer and answers later


@dataclass
class Submitted(Generic[T]):
    """An item waiting for its group, with the context of the worker that submitted it."""

    value: T
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    done: Done = field(default_factory=Done)

    def within(self, fn: Callable[..., R], *args: Any) -> R:
        """`fn(*args)` in the submitting worker's context: its correlation and its log lines."""
        return self.context.run(fn, *args)


RunGroup = Callable[[Session, Sequence[Submitted[Any]]], Sequence[Any]]


class Committer(Generic[T]):
    """What a worker sees: `submit(value)` waits until the value's group committed, returns its result or raises
    its refusal (or the error that stopped it)."""

    def __init__(self, queue: LightQueue) -> None:
        self.queue = queue

    def submit(self, value: T) -> Any:
        item = Submitted(value)
        self.queue.put(item)
        succeeded, outcome = item.done.wait()
        if not succeeded:
            raise outcome
        return outcome


class GroupCommit(DependencyProvider):
    """`placements = GroupCommit(run_group)` in a service that has a `Database`: workers get a `Committer`."""

    def __init__(self, run_group: RunGroup, max_group: int = MAX_GROUP) -> None:
        self.run_group = run_group
        self.max_group = max_group

    def setup(self) -> None:
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.queue: LightQueue = LightQueue()
        self.running = False
        self.committing = 0  # items of the group in the database now (0: idle); tests watch it

    def start(self) -> None:
        self.running = True
        self.container.spawn_managed_thread(self._run, identifier="group-commit")

    def stop(self) -> None:
        # Entrypoints and workers have stopped by now: nothing waits, nothing more is submitted.
        self.running = False
        self.queue.put(None)

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx: Any) -> Committer:
        return Committer(self.queue)

    def _run(self) -> None:
        while self.running:
            first = self.queue.get()
            group = [first] if first is not None else []
            while len(group) < self.max_group and not self.queue.empty():
                item = self.queue.get_nowait()
                if item is not None:
                    group.append(item)
            if group:
                self.committing = len(group)
                try:
                    self.commit(group)
                finally:
                    self.committing = 0

    def commit(self, group: list[Submitted]) -> None:
        """One transaction for the group; alone each, if it failed before its COMMIT."""
        try:
            outcomes = self._one_transaction(group)
        except _Failed as failed:
            if len(group) == 1:
                return self._answer(group[0], failed.error, succeeded=False)
            log.warning("group commit failed: its items go one by one",
                        extra={"items": len(group), "error": repr(failed.error)})
            for item in group:
                try:
                    (outcome,) = self._one_transaction([item])
                except _Failed as alone:
                    self._answer(item, alone.error, succeeded=False)
                except Exception as exc:  # its COMMIT failed
                    self._answer(item, exc, succeeded=False)
                else:
                    self._answer(item, outcome)
            return None
        except Exception as exc:  # the COMMIT failed: it may have committed, so nothing is tried again
            log.warning("group commit: the COMMIT failed", extra={"items": len(group), "error": repr(exc)})
            for item in group:
                self._answer(item, exc, succeeded=False)
            return None
        for item, outcome in zip(group, outcomes, strict=True):
            self._answer(item, outcome)
        return None

    def _one_transaction(self, group: list[Submitted]) -> Sequence[Any]:
        with self.database.session() as session:
            session.begin()
            try:
                outcomes = self.run_group(session, group)
                if len(outcomes) != len(group):
                    raise RuntimeError(f"{len(outcomes)} outcomes for a group of {len(group)}")
            except Exception as exc:
                session.rollback()
                raise _Failed(exc) from exc
            session.commit()
            return outcomes

    @staticmethod
    def _answer(item: Submitted, outcome: Any, succeeded: bool | None = None) -> None:
        if succeeded is None:
            succeeded = not isinstance(outcome, BaseException)
        item.done.send((succeeded, outcome))


class _Failed(Exception):
    """The group failed before its COMMIT and was rolled back: its items may go again alone."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error
