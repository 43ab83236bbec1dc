"""Detection in a process of its own, beside the Faust worker.

Why: Faust's consuming path (fetch, one ``wait_first`` per message, stream iteration,
acks) costs a worker's event loop about as much CPU per event as decoding and detecting
it, and both hold the same GIL. Running ``Pipeline`` here lets the two overlap on two
cores: the worker consumes batch n+1 while this process detects batch n (README, "Speed
of the stream worker"). What crosses the boundary is plain data: message tuples in,
``Outputs`` and metric families out. Checkpoints' table records go from here straight
to the changelog (``stream/state_writer.py``): megabytes a second the worker's event
loop need not handle.

Protocol, over a socket pair, each frame a 4-byte length and a pickle:

* the worker sends ``("call", name, args)``; calls are answered one by one, in the order
  sent, with ``("result", value)`` or ``("error", traceback)``;
* while it works on a call, this process may ask the worker about table values it does
  not hold yet, ``("keys", partition)``, ``("get", key)`` or ``("scan", prefix)``,
  answered at once with ``("answer", x)``.

The table: the worker's Faust store, filled from the changelog by Faust's recovery, is
what this process reads once per key (``WorkerTable``); after that its own copy is the
current one, and it writes the changelog. At a rebalance the worker hands off (last
checkpoint, then ``forget`` drops the copy), Faust reads each assigned partition's
changelog into its store up to its end, this process's checkpoints included, and reads
start again from there. If either process dies, the other sees the socket
close: the worker fails its pending calls (``DetectionError``), this process exits.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from alerts.metrics import Metrics
from config.rules import Rules
from config.settings import Settings
from models.detectors.forest import ForestModel
from stream.pipeline import Message, Outputs, Pipeline, warm_up_training
from stream.replay import collect_rarely, partitioner
from stream.state_writer import StateWriter
from stream.table_stores import Batch, TableStores, items_with_prefix, partition_of_key

log = logging.getLogger(__name__)

LENGTH = struct.Struct(">I")
PR_SET_PDEATHSIG = 1  # prctl(2)


Then = Callable[[Any], Awaitable[None]]
"""What to do with the result of a call."""


@dataclass(frozen=True, slots=True)
class Changelog:
    """Where checkpoints are written: the state table's changelog topic."""

    topic: str
    max_record_bytes: int


class DetectionError(RuntimeError):
    """The detection process failed a call, or is gone."""


async def ignore(result: Any) -> None:
    """A call's result needs nothing done (its failure still counts)."""


def encode(frame: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    return LENGTH.pack(len(data)) + data


# ---------------------------------------------------------------- the worker's side


class DetectionProcess:
    """The worker's handle on its detection process: ``ask`` sends a call, and a task of
    this handle gives each result to the call's ``then``, one at a time, in the order
    asked; table questions are answered from ``table`` meanwhile."""

    def __init__(
        self,
        settings: Settings,
        rules: Rules,
        table: Mapping[bytes, bytes],
        changelog: Changelog,
        initial_forest: ForestModel | None,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        """``table`` is the worker's store of the state table, filled by Faust from
        ``changelog`` (where this process writes checkpoints); ``on_failure`` hears of a
        failed call or ``then`` (the results after it are not handled: the worker must
        be restarted)."""
        self.settings = settings
        self.rules = rules  # the rules sent last: what events processed from now on get
        self.table = table
        self.changelog = changelog
        self.initial_forest = initial_forest
        self.on_failure = on_failure
        self.process: subprocess.Popen[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()  # calls not answered yet
        self._answers: asyncio.Queue[tuple[asyncio.Future[Any], Then]] = asyncio.Queue()
        self._starting = asyncio.Lock()
        self._gone: DetectionError | None = None
        self._failure: BaseException | None = None  # a call or its handling failed
        self._broken = asyncio.Event()  # set on that failure
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False  # by close(): the end of the connection is no failure

    async def ask(self, name: str, *args: Any, then: Then = ignore) -> None:
        """Call ``name(*args)`` in the detection process (started on first use);
        ``then`` gets the result. Never waits once started, so calls asked one after
        the other without an ``await`` between them run in that order."""
        if self._failure is not None:
            raise self._failure
        await self._ready()
        self._answers.put_nowait((self._call(name, *args), then))

    async def use_rules(self, rules: Rules) -> None:
        """Judge every event asked about from now on by ``rules``."""
        self.rules = rules
        await self.ask("use_rules", rules)

    async def result(self, name: str, *args: Any) -> Any:
        """Call ``name(*args)`` and wait for its result (after the results of the calls
        asked before it have been handled)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def then(result: Any) -> None:
            done.set_result(result)

        await self.ask(name, *args, then=then)
        return await self.until(done)

    async def until(self, future: asyncio.Future[Any]) -> Any:
        """``future``'s result, or the failure that means it will never come."""
        broken = asyncio.ensure_future(self._broken.wait())
        try:
            await asyncio.wait((future, broken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            broken.cancel()
        if not future.done():
            raise self._failure or DetectionError("detection failed")
        return future.result()

    async def close(self) -> None:
        """Close the connection and wait for the process to exit (it writes nothing
        more: a checkpoint not closed stays unfinished, as after a crash)."""
        if self._writer is not None and self.process is not None:
            self._closed = True
            self._writer.close()
            await asyncio.to_thread(self.process.wait)

    async def _ready(self) -> None:
        if self._writer is not None:
            return
        async with self._starting:
            if self._writer is not None:
                return
            ours, theirs = socket.socketpair()
            self.process = subprocess.Popen(
                # -P: import settleguard as the worker does, never from the current directory
                [sys.executable, "-P", "-m", "stream.detection_process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
            theirs.close()
            reader, self._writer = await asyncio.open_connection(sock=ours)
            start = (self.settings, self.rules, self.changelog, self.initial_forest)
            self._writer.write(encode(start))
            loop = asyncio.get_running_loop()
            # Not Faust tasks: a checkpoint at shutdown needs them after Faust's have stopped.
            self._tasks = [
                loop.create_task(self._read(reader), name="detection-reader"),
                loop.create_task(self._handle_answers(), name="detection-answers"),
            ]

    def _call(self, name: str, *args: Any) -> asyncio.Future[Any]:
        assert self._writer is not None
        future = asyncio.get_running_loop().create_future()
        if self._gone is not None:
            future.set_exception(self._gone)
            return future
        self._pending.append(future)
        self._writer.write(encode(("call", name, args)))
        return future

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                length = LENGTH.unpack(await reader.readexactly(LENGTH.size))[0]
                kind, value = pickle.loads(await reader.readexactly(length))
                if kind == "get":
                    self._answer(self.table.get(value))
                elif kind == "keys":
                    self._answer([k for k in self.table if partition_of_key(k) == value])
                elif kind == "scan":
                    self._answer(items_with_prefix(self.table, value))
                elif kind == "result":
                    self._pending.popleft().set_result(value)
                else:
                    self._pending.popleft().set_exception(DetectionError(value))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if self._closed:
                return
            code = self.process.poll() if self.process is not None else None
            self._gone = DetectionError(f"the detection process is gone (exit code {code})")
            log.error("%s: %r", self._gone, exc)
            while self._pending:
                self._pending.popleft().set_exception(self._gone)
            self._fail(self._gone)

    async def _handle_answers(self) -> None:
        while True:
            answer, then = await self._answers.get()
            try:
                await then(await answer)
            except Exception as exc:
                log.exception("detection answer failed")
                self._fail(exc)
                return

    def _fail(self, exc: BaseException) -> None:
        """Detection is over: fail what waits, tell the worker (once)."""
        if self._failure is None:
            self._failure = exc
            self._broken.set()
            self.on_failure(exc)

    def _answer(self, value: Any) -> None:
        assert self._writer is not None
        self._writer.write(encode(("answer", value)))


# ---------------------------------------------------------------- the detection side


class Link:
    """This process's end of the socket: blocking frames; calls that arrive while a
    table question waits for its answer are kept for later, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        self.calls: deque[tuple[Any, ...]] = deque()

    def send(self, frame: tuple[Any, ...]) -> None:
        self.sock.sendall(encode(frame))

    def receive(self) -> Any:
        header = self.file.read(LENGTH.size)
        if len(header) < LENGTH.size:
            raise EOFError("the worker closed the connection")
        return pickle.loads(self.file.read(LENGTH.unpack(header)[0]))

    def next_call(self) -> tuple[Any, ...]:
        return self.calls.popleft() if self.calls else self.receive()

    def ask(self, question: str, subject: Any) -> Any:
        """The worker's answer to a table question."""
        self.send((question, subject))
        while (frame := self.receive())[0] != "answer":
            self.calls.append(frame)
        return frame[1]


class WorkerTable(MutableMapping[bytes, bytes]):
    """The worker's table as this process sees it: a key is read from the worker once,
    then kept here with every write to it (a deleted key is kept as ``None``). The keys
    of a partition are asked for at its first read, so a key the worker does not have
    (a new order, a new outlet) costs no question."""

    def __init__(self, ask: Callable[[str, Any], Any]) -> None:
        self._ask = ask
        self._copy: dict[bytes, bytes | None] = {}
        self._keys: dict[int, set[bytes]] = {}  # partition -> keys in the worker's table
        self._scanned: set[bytes] = set()

    def __getitem__(self, key: bytes) -> bytes:
        if key in self._copy:
            value = self._copy[key]
        else:
            partition = partition_of_key(key)
            keys = self._keys.get(partition)
            if keys is None:
                keys = self._keys[partition] = set(self._ask("keys", partition))
            value = self._copy[key] = self._ask("get", key) if key in keys else None
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._copy[key] = value

    def __delitem__(self, key: bytes) -> None:
        self[key]  # KeyError if absent, as a mapping must
        self._copy[key] = None

    def __iter__(self) -> Iterator[bytes]:
        return iter([key for key, _ in self.scan(b"")])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """The items whose keys start with ``prefix``, with this process's writes."""
        if prefix not in self._scanned:
            for key, value in self._ask("scan", prefix):
                self._copy.setdefault(key, value)
            self._scanned.add(prefix)
        return [(k, v) for k, v in self._copy.items() if v is not None and k.startswith(prefix)]

    def forget(self) -> None:
        """Drop the copy: read everything from the worker again."""
        self._copy.clear()
        self._keys.clear()
        self._scanned.clear()


class Detection:
    """The calls the worker makes, on this process's pipeline."""

    def __init__(
        self,
        settings: Settings,
        rules: Rules,
        changelog: Changelog,
        forest: ForestModel | None,
        link: Link,
    ) -> None:
        self.table = WorkerTable(link.ask)
        self.writer = StateWriter(
            settings.kafka_bootstrap, changelog.topic, changelog.max_record_bytes
        )
        self._taken: Batch | None = None  # the checkpoint being written
        self._writing: Future[None] | None = None  # its state records
        partition_of = partitioner(settings.topic_partitions)
        self.stores = TableStores(self.table, partition_of, scan=self.table.scan)
        self.metrics = Metrics(CollectorRegistry())
        self.training = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self.training.submit(warm_up_training)
        self.pipeline = Pipeline(
            rules,
            self.stores,
            self.metrics,
            settings.rekey_topic,
            settings.verdicts_topic,
            settings.idle_seconds,
            forest,
            training=self.training,
        )

    def process(self, rows: list[tuple[Any, ...]]) -> Outputs:
        """Detect on a batch of messages, each as the fields of a ``Message``."""
        return self.pipeline.process([Message(*row) for row in rows])

    def tick(self) -> Outputs:
        return self.pipeline.tick()

    def use_rules(self, rules: Rules) -> None:
        self.pipeline.use_rules(rules)

    def take_checkpoint(self) -> tuple[list[tuple[int, bytes, bytes]], list[Metric], bool]:
        """Changed ratings, the detection metrics as they stand, and whether any state
        changed since the last checkpoint; that state starts being written."""
        ratings = self.pipeline.ratings()
        self.pipeline.note_model_versions()
        self._taken = self.stores.take_batch()
        self._writing = self.writer.write(self._taken.state)
        return ratings, self.metrics.detection_families(), bool(self._taken.sequences)

    def close_checkpoint(self) -> None:
        """Once its state is on the broker, write each partition's closing record: the
        checkpoint taken last is complete. The worker calls this only once the outputs
        of the events behind it are on the broker too (otherwise a crash could leave
        state that has seen events whose alerts were never sent)."""
        assert self._taken is not None and self._writing is not None
        self._writing.result()
        self.writer.write(self._taken.closing).result()
        self.stores.finished(self._taken)
        self._taken = self._writing = None

    def forget(self) -> None:
        """Partitions moved: drop all held state; read it again from the worker's table."""
        self.pipeline.forget()
        self.table.forget()

    def close(self) -> None:
        self.training.shutdown(wait=False, cancel_futures=True)
        self.writer.close()


CALLS = frozenset({"process", "tick", "use_rules", "take_checkpoint", "close_checkpoint", "forget"})


def serve(link: Link) -> None:
    """Answer the worker's calls until it closes the connection."""
    settings, rules, changelog, forest = link.receive()
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(message)s")
    collect_rarely()  # it holds the detection state: see stream/replay.py
    detection = Detection(settings, rules, changelog, forest, link)
    try:
        while True:
            try:
                _, name, args = link.next_call()
            except EOFError:
                return
            if name not in CALLS:
                link.send(("error", f"unknown call {name!r}"))
                continue
            try:
                result = getattr(detection, name)(*args)
            except Exception:
                log.exception("detection call %s failed", name)
                link.send(("error", traceback.format_exc()))
            else:
                link.send(("result", result))
    finally:
        detection.close()


def die_with_parent() -> None:
    """Be killed the moment the worker dies (Linux): a write this process finished after a
    crashed worker was replaced could land after the new worker's."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the worker died before the line above
            os._exit(1)


def main() -> None:
    """Entry point: ``python -P -m stream.detection_process FD`` (started by the worker)."""
    die_with_parent()
    serve(Link(socket.socket(fileno=int(sys.argv[1]))))


if __name__ == "__main__":
    main()
