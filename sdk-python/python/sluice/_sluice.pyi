"""Type stubs of the native module ``sluice._sluice`` (the Rust extension).

The admin answers are the dicts of the broker's JSON encoding (the shapes of the HTTP API in
docs/PROTOCOL.md), typed here as ``TypedDict``s.
"""

import os
import sys
from types import TracebackType
from typing import (
    Any,
    Awaitable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:
    from typing_extensions import NotRequired, TypedDict

__version__: str

Payload = Union[bytes, bytearray, str]
"""A key, value or header value: bytes, or str (sent as UTF-8)."""

Headers = Union[Mapping[str, Optional[Payload]], Iterable[Tuple[str, Optional[Payload]]]]
"""Headers: a dict, or (name, value) pairs (names may repeat, order is kept)."""

Acks = Union[int, str]
"""0, 1, "all" (or -1)."""

ConfigValue = Union[str, int, float, bool]

_T = TypeVar("_T")

# ---------------------------------------------------------------------------------------------
# Admin answers (JSON shapes)

class TopicSummary(TypedDict):
    name: str
    partitions: int
    internal: bool

class PartitionInfo(TypedDict):
    partition: int
    log_start_offset: int
    high_watermark: int
    log_end_offset: int
    size_bytes: int
    segments: int

class TopicDescription(TypedDict):
    name: str
    internal: bool
    replication_factor: int
    partitions: List[PartitionInfo]
    configs: Dict[str, str]

class PartitionOffsets(TypedDict):
    partition: int
    earliest: int
    latest: int
    offset_for_timestamp: NotRequired[Optional[int]]

class GroupSummary(TypedDict):
    group: str
    state: str
    members: int

class TopicPartitions(TypedDict):
    topic: str
    partitions: List[int]

class MemberDescription(TypedDict):
    member_id: str
    instance_id: NotRequired[str]
    member_epoch: int
    topics: List[str]
    assigned: List[TopicPartitions]
    target: List[TopicPartitions]

class PartitionLag(TypedDict):
    topic: str
    partition: int
    committed: Optional[int]
    log_end_offset: int
    lag: int
    owner: NotRequired[str]

class GroupDescription(TypedDict):
    group: str
    state: str
    group_epoch: int
    assignor: str
    members: List[MemberDescription]
    partitions: List[PartitionLag]

class CommittedOffset(TypedDict):
    topic: str
    partition: int
    offset: int
    metadata: str
    commit_time_ms: int

class PluginDescription(TypedDict):
    name: str
    kind: str
    abi_version: int
    size_bytes: int
    sha256: str
    uploaded_ms: int
    calls: int
    records: int
    errors: int
    last_error: NotRequired[str]

# ---------------------------------------------------------------------------------------------
# Records

class Record:
    """A consumed record. Keys, values and header values are bytes (``None`` for nulls)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    """Milliseconds since the Unix epoch."""
    key: Optional[bytes]
    value: Optional[bytes]
    headers: List[Tuple[str, Optional[bytes]]]
    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: Optional[Payload] = None,
        value: Optional[Payload] = None,
        headers: Optional[Headers] = None,
    ) -> None: ...

class RecordMetadata:
    """Where a produced record went."""

    topic: str
    partition: int
    offset: Optional[int]
    """``None`` with ``acks=0``, where the broker does not say."""
    timestamp: int

class SendFuture:
    """The outcome of one sent record (from :meth:`Producer.send`)."""

    @property
    def partition(self) -> Optional[int]:
        """The partition the record was routed to: known at once, except on a topic whose
        partitioner plugin runs in the broker (``None`` there until the outcome is known)."""
    def result(self, timeout: Optional[float] = None) -> RecordMetadata:
        """Waits (up to ``timeout`` seconds) for the broker's acknowledgement; raises the
        record's error, or :class:`sluice.TimeoutError` when the timeout passes first."""
    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """Like :meth:`result`, returning the error instead of raising it."""
    def done(self) -> bool:
        """Whether the outcome is known (does not wait)."""

# ---------------------------------------------------------------------------------------------
# Blocking API

class Producer:
    """Sends records to a broker. Records are routed (explicit partition > murmur2 of the key,
    as Kafka > sticky per batch) and batched per partition in Rust; ``send`` only hands one
    over. Use as a context manager, or call :meth:`close`, so that buffered records are sent.

    Args:
        url: ``http://host:port``, ``ws://host:port`` or ``host:port``.
        acks: 0 (no wait), 1 (leader wrote it) or "all" (default).
        linger_ms: how long a batch waits for more records (default 5).
        batch_bytes: largest batch (default 1 MiB; the topic's ``max.message.bytes`` caps it).
        buffer_bytes: most bytes accepted and not yet acknowledged (default 32 MiB); sends
            block while it is full.
        request_bytes: most bytes of batches in one request (default 8 MiB).
        delivery_timeout_ms: how long failed sends are retried (default 120 000).
        request_timeout_ms: how long a request may wait for its answer (default 30 000).
        connect_timeout_ms: how long connecting may take (default 10 000).
        client_name: the name the broker logs (default ``sluice-python/<version>``).

    Raises:
        sluice.ConnectionError: the broker cannot be reached.
    """

    def __init__(
        self,
        url: str,
        *,
        acks: Optional[Acks] = None,
        linger_ms: int = 5,
        batch_bytes: int = 1048576,
        buffer_bytes: int = 33554432,
        request_bytes: int = 8388608,
        delivery_timeout_ms: int = 120000,
        request_timeout_ms: int = 30000,
        connect_timeout_ms: int = 10000,
        client_name: Optional[str] = None,
    ) -> None: ...
    def send(
        self,
        topic: str,
        value: Optional[Payload],
        key: Optional[Payload] = None,
        headers: Optional[Headers] = None,
        partition: Optional[int] = None,
        timestamp: Optional[int] = None,
    ) -> SendFuture:
        """Hands one record over (blocking only while the buffer is full); the future
        resolves to its :class:`RecordMetadata`. Raises at once for an unknown topic, a
        partition the topic lacks, or a record larger than the topic allows."""
    def produce(
        self,
        topic: str,
        value: Optional[Payload],
        key: Optional[Payload] = None,
        headers: Optional[Headers] = None,
        partition: Optional[int] = None,
        timestamp: Optional[int] = None,
    ) -> None:
        """Like :meth:`send` without a future (fire and forget, cheaper): a failure is raised
        by the next :meth:`flush` or :meth:`close`."""
    def produce_batch(
        self,
        topic: str,
        values: Iterable[Optional[Payload]],
        keys: Optional[Iterable[Optional[Payload]]] = None,
        partition: Optional[int] = None,
    ) -> None:
        """Hands many records to one topic over in one call (fire and forget, the cheapest
        path): ``values`` and optionally as many ``keys``. At most 1 000 000 per call."""
    def flush(self, timeout: Optional[float] = None) -> None:
        """Sends everything buffered now and waits until every record is acknowledged or
        failed; raises the first failure of fire-and-forget records."""
    def close(self, timeout: Optional[float] = None) -> None:
        """Sends what is buffered, waits for it, closes the connection. Idempotent."""
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> "Producer": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Consumer:
    """Reads records of one or more topics: iterate over it (blocks until a record comes;
    Ctrl-C interrupts), or call :meth:`poll`.

    Without ``group`` it reads every partition of its topics itself and commits nothing
    (broadcast). With ``group`` it is a member of that consumer group: the broker shares the
    partitions among the members, each partition starts at the group's committed offset (else
    per ``auto_offset_reset``), and positions are committed every ``auto_commit_interval_ms``
    (``enable_auto_commit``), when partitions move, and at :meth:`close`.

    Args:
        url: the broker.
        topics: a topic name or several.
        group: the consumer group to join, or ``None``.
        auto_offset_reset: where to start without a committed offset: "earliest", "latest"
            (default) or "none" (groups only: report an error instead).
        filter: an uploaded filter plugin to run in the broker on this consumer's records.
        filter_params: the filter's parameters.
        partitions: without a group, read only these partitions.
        enable_auto_commit, auto_commit_interval_ms, session_timeout_ms, instance_id,
        assignor ("sticky", "range", "roundrobin"): group settings.
        credit_bytes: bytes the broker may push ahead of the application, per topic.

    Raises:
        sluice.UnknownTopicError: a topic does not exist (without a group).
        sluice.ConnectionError: the broker cannot be reached.
    """

    def __init__(
        self,
        url: str,
        topics: Union[str, Iterable[str]],
        *,
        group: Optional[str] = None,
        auto_offset_reset: str = "latest",
        filter: Optional[str] = None,
        filter_params: Optional[Mapping[str, str]] = None,
        partitions: Optional[Sequence[int]] = None,
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5000,
        session_timeout_ms: Optional[int] = None,
        instance_id: Optional[str] = None,
        assignor: str = "sticky",
        credit_bytes: int = 8388608,
        request_timeout_ms: int = 30000,
        connect_timeout_ms: int = 10000,
        client_name: Optional[str] = None,
    ) -> None: ...
    def poll(self, timeout: Optional[float] = None) -> Optional[Record]:
        """The next record, waiting up to ``timeout`` seconds (``None``: until one comes);
        ``None`` if none came in time."""
    def poll_batch(self, max_records: int = 500, timeout: Optional[float] = None) -> List[Record]:
        """Waits up to ``timeout`` for a first record, then takes up to ``max_records`` that
        are already at hand."""
    def __iter__(self) -> Iterator[Record]: ...
    def __next__(self) -> Record: ...
    def commit(self, offsets: Optional[Sequence[Tuple[str, int, int]]] = None) -> None:
        """Group mode: commits every position (the next offset to read per partition), or the
        given (topic, partition, next offset) triples."""
    def seek(self, topic: str, partition: int, offset: int) -> None:
        """The next record read from the partition is the one at ``offset`` (or the nearest
        one the partition holds)."""
    def position(self, topic: str, partition: int) -> Optional[int]: ...
    def assignment(self) -> List[Tuple[str, int]]: ...
    def pause(self, partitions: Sequence[Tuple[str, int]]) -> None: ...
    def resume(self, partitions: Sequence[Tuple[str, int]]) -> None: ...
    def paused(self) -> List[Tuple[str, int]]: ...
    def close(self) -> None:
        """Ends the subscriptions; in a group commits (with auto-commit) and leaves."""
    @property
    def group(self) -> Optional[str]: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> "Consumer": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

StrPath = Union[str, "os.PathLike[str]"]

class Admin:
    """Topics, consumer groups and plugins. Answers are dicts shaped as the HTTP API's JSON."""

    def __init__(
        self,
        url: str,
        *,
        request_timeout_ms: int = 30000,
        connect_timeout_ms: int = 10000,
        client_name: Optional[str] = None,
    ) -> None: ...
    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: Optional[int] = None,
        config: Optional[Mapping[str, ConfigValue]] = None,
    ) -> TopicDescription: ...
    def list_topics(self) -> List[TopicSummary]: ...
    def describe_topic(self, name: str) -> TopicDescription: ...
    def alter_topic(
        self,
        name: str,
        config: Optional[Mapping[str, Optional[ConfigValue]]] = None,
        partitions: Optional[int] = None,
    ) -> TopicDescription: ...
    def delete_topic(self, name: str) -> None: ...
    def list_offsets(self, topic: str, timestamp: Optional[int] = None) -> List[PartitionOffsets]: ...
    def list_groups(self) -> List[GroupSummary]: ...
    def describe_group(self, group: str) -> GroupDescription: ...
    def group_offsets(
        self, group: str, topics: Optional[Sequence[str]] = None
    ) -> List[CommittedOffset]: ...
    def reset_offsets(
        self,
        group: str,
        to: Union[str, int, None] = None,
        *,
        timestamp: Optional[int] = None,
        topics: Optional[Sequence[str]] = None,
    ) -> List[CommittedOffset]:
        """Moves a group's offsets to "earliest", "latest", an offset, or the first record at
        or after ``timestamp`` (ms). The group must have no active members."""
    def delete_group(self, group: str) -> None: ...
    def upload_plugin(self, name: str, module: Union[bytes, StrPath]) -> PluginDescription:
        """Uploads (or replaces) a plugin from a ``.wasm`` file path or the module's bytes."""
    def list_plugins(self) -> List[PluginDescription]: ...
    def describe_plugin(self, name: str) -> PluginDescription: ...
    def delete_plugin(self, name: str) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Admin": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

# ---------------------------------------------------------------------------------------------
# asyncio API (exported by sluice.aio as Producer, Consumer, Admin)

class AsyncProducer:
    """:class:`Producer` for asyncio. Connects on first use, ``await start()`` or
    ``async with``."""

    def __init__(
        self,
        url: str,
        *,
        acks: Optional[Acks] = None,
        linger_ms: int = 5,
        batch_bytes: int = 1048576,
        buffer_bytes: int = 33554432,
        request_bytes: int = 8388608,
        delivery_timeout_ms: int = 120000,
        request_timeout_ms: int = 30000,
        connect_timeout_ms: int = 10000,
        client_name: Optional[str] = None,
    ) -> None: ...
    def start(self) -> Awaitable[None]: ...
    def send(
        self,
        topic: str,
        value: Optional[Payload],
        key: Optional[Payload] = None,
        headers: Optional[Headers] = None,
        partition: Optional[int] = None,
        timestamp: Optional[int] = None,
    ) -> Awaitable[RecordMetadata]:
        """Resolves once the broker acknowledged the record. Records sent concurrently
        (``asyncio.gather``) share batches."""
    def produce(
        self,
        topic: str,
        value: Optional[Payload],
        key: Optional[Payload] = None,
        headers: Optional[Headers] = None,
        partition: Optional[int] = None,
        timestamp: Optional[int] = None,
    ) -> Awaitable[None]:
        """Resolves once the producer took the record (fire and forget); failures are
        raised by the next :meth:`flush` or :meth:`close`."""
    def flush(self) -> Awaitable[None]: ...
    def close(self) -> Awaitable[None]: ...
    @property
    def closed(self) -> bool: ...
    def __aenter__(self) -> Awaitable["AsyncProducer"]: ...
    def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Awaitable[None]: ...

class Done:
    """An awaitable that is already done (``await`` gives ``None`` at once)."""

    def __await__(self) -> Iterator[None]: ...
    def __iter__(self) -> "Done": ...
    def __next__(self) -> None: ...

class AsyncConsumer:
    """:class:`Consumer` for asyncio: ``async for record in consumer``. Connects and
    subscribes on first use, ``await start()`` or ``async with``."""

    def __init__(
        self,
        url: str,
        topics: Union[str, Iterable[str]],
        *,
        group: Optional[str] = None,
        auto_offset_reset: str = "latest",
        filter: Optional[str] = None,
        filter_params: Optional[Mapping[str, str]] = None,
        partitions: Optional[Sequence[int]] = None,
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5000,
        session_timeout_ms: Optional[int] = None,
        instance_id: Optional[str] = None,
        assignor: str = "sticky",
        credit_bytes: int = 8388608,
        request_timeout_ms: int = 30000,
        connect_timeout_ms: int = 10000,
        client_name: Optional[str] = None,
    ) -> None: ...
    def start(self) -> Awaitable[None]: ...
    def poll(self, timeout: Optional[float] = None) -> Awaitable[Optional[Record]]: ...
    def poll_batch(
        self, max_records: int = 500, timeout: Optional[float] = None
    ) -> Awaitable[List[Record]]: ...
    def __aiter__(self) -> "AsyncConsumer": ...
    def __anext__(self) -> Awaitable[Record]: ...
    def commit(
        self, offsets: Optional[Sequence[Tuple[str, int, int]]] = None
    ) -> Awaitable[None]: ...
    def seek(self, topic: str, partition: int, offset: int) -> Awaitable[None]: ...
    def position(self, topic: str, partition: int) -> Awaitable[Optional[int]]: ...
    def assignment(self) -> Awaitable[List[Tuple[str, int]]]: ...
    def pause(self, partitions: Sequence[Tuple[str, int]]) -> Awaitable[None]: ...
    def resume(self, partitions: Sequence[Tuple[str, int]]) -> Awaitable[None]: ...
    def paused(self) -> Awaitable[List[Tuple[str, int]]]: ...
    def close(self) -> Awaitable[None]: ...
    @property
    def group(self) -> Optional[str]: ...
    def __aenter__(self) -> Awaitable["AsyncConsumer"]: ...
    def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Awaitable[None]: ...

class AsyncAdmin:
    """:class:`Admin` for asyncio: the same methods, awaitable."""

    def __init__(
        self,
        url: str,
        *,
        request_timeout_ms: int = 30000,
        connect_timeout_ms: int = 10000,
        client_name: Optional[str] = None,
    ) -> None: ...
    def start(self) -> Awaitable[None]: ...
    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: Optional[int] = None,
        config: Optional[Mapping[str, ConfigValue]] = None,
    ) -> Awaitable[TopicDescription]: ...
    def list_topics(self) -> Awaitable[List[TopicSummary]]: ...
    def describe_topic(self, name: str) -> Awaitable[TopicDescription]: ...
    def alter_topic(
        self,
        name: str,
        config: Optional[Mapping[str, Optional[ConfigValue]]] = None,
        partitions: Optional[int] = None,
    ) -> Awaitable[TopicDescription]: ...
    def delete_topic(self, name: str) -> Awaitable[None]: ...
    def list_offsets(
        self, topic: str, timestamp: Optional[int] = None
    ) -> Awaitable[List[PartitionOffsets]]: ...
    def list_groups(self) -> Awaitable[List[GroupSummary]]: ...
    def describe_group(self, group: str) -> Awaitable[GroupDescription]: ...
    def group_offsets(
        self, group: str, topics: Optional[Sequence[str]] = None
    ) -> Awaitable[List[CommittedOffset]]: ...
    def reset_offsets(
        self,
        group: str,
        to: Union[str, int, None] = None,
        *,
        timestamp: Optional[int] = None,
        topics: Optional[Sequence[str]] = None,
    ) -> Awaitable[List[CommittedOffset]]: ...
    def delete_group(self, group: str) -> Awaitable[None]: ...
    def upload_plugin(
        self, name: str, module: Union[bytes, StrPath]
    ) -> Awaitable[PluginDescription]: ...
    def list_plugins(self) -> Awaitable[List[PluginDescription]]: ...
    def describe_plugin(self, name: str) -> Awaitable[PluginDescription]: ...
    def delete_plugin(self, name: str) -> Awaitable[None]: ...
    def close(self) -> Awaitable[None]: ...
    def __aenter__(self) -> Awaitable["AsyncAdmin"]: ...
    def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Awaitable[None]: ...
