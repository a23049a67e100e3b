"""The exceptions the client raises.

Every exception is a :class:`SluiceError`. Errors the broker answered with are
:class:`BrokerError` subclasses carrying the broker's stable error code (``code``, e.g.
``"unknown_topic"``, as in docs/PROTOCOL.md); match on the class or on ``code``, never on the
message. Errors of the client itself (the broker cannot be reached, no answer in time, bad
input, a closed client) have ``code`` ``None``.

``retriable`` says whether trying the same thing again later may succeed. The producer and the
consumer already retry those themselves; it matters for admin calls.

Some classes also derive from the built-in exception a Python program would catch for the same
failure: :class:`ConnectionError` from :class:`builtins.ConnectionError`,
:class:`TimeoutError` from :class:`builtins.TimeoutError`, :class:`InvalidInputError` from
:class:`ValueError`.
"""

from __future__ import annotations

import builtins
from typing import Any, Dict, Optional, Tuple, Type

__all__ = [
    "SluiceError",
    "BrokerError",
    "ConnectionError",
    "TimeoutError",
    "ClosedError",
    "InvalidInputError",
    "ProtocolError",
    "BadRequestError",
    "UnknownTopicError",
    "UnknownPartitionError",
    "TopicExistsError",
    "InvalidTopicNameError",
    "InvalidConfigError",
    "InternalTopicError",
    "RecordTooLargeError",
    "RequestTooLargeError",
    "InvalidRecordsError",
    "OffsetOutOfRangeError",
    "KeyRequiredError",
    "UnknownGroupError",
    "UnknownMemberError",
    "FencedMemberEpochError",
    "GroupNotEmptyError",
    "UnknownPluginError",
    "InvalidPluginError",
    "PluginFailedError",
    "TooManyRequestsError",
    "ShuttingDownError",
    "StorageError",
    "error_class_for_code",
]


class SluiceError(Exception):
    """Base class of every error of this package.

    Attributes:
        message: what happened, for humans.
        code: the broker's stable error code (``"unknown_topic"``, ...) for errors the broker
            answered with, else ``None``.
        retriable: whether the same request may succeed if tried again later.
    """

    message: str
    code: Optional[str]
    retriable: bool

    def __init__(self, message: str, code: Optional[str] = None, retriable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retriable = retriable

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        if self.code is None:
            return f"{type(self).__name__}({self.message!r})"
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"

    def __reduce__(self) -> Tuple[Any, ...]:  # picklable across processes
        return (type(self), (self.message, self.code, self.retriable))


class BrokerError(SluiceError):
    """The broker answered with an error; ``code`` says which. Codes without a class of their
    own (including codes newer than this client) raise this class itself."""


class ConnectionError(SluiceError, builtins.ConnectionError):
    """No connection to the broker could be made, or it was lost while the request was in
    flight (whether the broker acted on that request is then unknown)."""


class TimeoutError(SluiceError, builtins.TimeoutError):
    """No answer came in time (``request_timeout_ms``, ``connect_timeout_ms``, or a
    ``timeout`` argument)."""


class ClosedError(SluiceError):
    """The producer, consumer or admin client was closed."""


class InvalidInputError(SluiceError, ValueError):
    """The call asked for something impossible: a bad URL, an empty topic, a record larger than
    the topic allows, a partition the topic does not have, a bad option."""


class ProtocolError(SluiceError):
    """The broker sent something this client does not understand."""


class BadRequestError(BrokerError):
    """``bad_request``: the broker refused the request as malformed."""


class UnknownTopicError(BrokerError):
    """``unknown_topic``: the topic does not exist."""


class UnknownPartitionError(BrokerError):
    """``unknown_partition``: the topic has no such partition."""


class TopicExistsError(BrokerError):
    """``topic_exists``: a topic with that name exists already."""


class InvalidTopicNameError(BrokerError):
    """``invalid_topic_name``: the name breaks the naming rules."""


class InvalidConfigError(BrokerError):
    """``invalid_config``: a topic setting is unknown or out of bounds."""


class InternalTopicError(BrokerError):
    """``internal_topic``: internal topics (``__`` prefix) cannot be changed by clients."""


class RecordTooLargeError(BrokerError):
    """``record_too_large``: a batch is larger than the topic's ``max.message.bytes``."""


class RequestTooLargeError(BrokerError):
    """``request_too_large``: a request is larger than the broker accepts."""


class InvalidRecordsError(BrokerError):
    """``invalid_records``: record batch bytes failed the broker's validation."""


class OffsetOutOfRangeError(BrokerError):
    """``offset_out_of_range``: the offset is outside the partition."""


class KeyRequiredError(BrokerError):
    """``key_required``: a compacted topic needs a key on every record."""


class UnknownGroupError(BrokerError):
    """``unknown_group``: the consumer group does not exist."""


class UnknownMemberError(BrokerError):
    """``unknown_member``: the group has no member with this id."""


class FencedMemberEpochError(BrokerError):
    """``fenced_member_epoch``: another incarnation of the member replaced this one."""


class GroupNotEmptyError(BrokerError):
    """``group_not_empty``: the operation needs a group without active members."""


class UnknownPluginError(BrokerError):
    """``unknown_plugin``: no plugin with that name was uploaded."""


class InvalidPluginError(BrokerError):
    """``invalid_plugin``: the module is not a valid Sluice plugin, or its parameters were
    refused."""


class PluginFailedError(BrokerError):
    """``plugin_failed``: a plugin failed while running (trap, timeout, memory limit)."""


class TooManyRequestsError(BrokerError):
    """``too_many_requests`` or ``too_many_connections``: the broker is at a limit; retriable."""


class ShuttingDownError(BrokerError):
    """``shutting_down``: the broker is shutting down; retriable."""


class StorageError(BrokerError):
    """``storage_error``: reading or writing the log failed on the broker; retriable."""


_BY_CODE: Dict[str, Type[BrokerError]] = {
    "bad_request": BadRequestError,
    "unknown_topic": UnknownTopicError,
    "unknown_partition": UnknownPartitionError,
    "topic_exists": TopicExistsError,
    "invalid_topic_name": InvalidTopicNameError,
    "invalid_config": InvalidConfigError,
    "internal_topic": InternalTopicError,
    "record_too_large": RecordTooLargeError,
    "request_too_large": RequestTooLargeError,
    "invalid_records": InvalidRecordsError,
    "offset_out_of_range": OffsetOutOfRangeError,
    "key_required": KeyRequiredError,
    "unknown_group": UnknownGroupError,
    "unknown_member": UnknownMemberError,
    "fenced_member_epoch": FencedMemberEpochError,
    "group_not_empty": GroupNotEmptyError,
    "unknown_plugin": UnknownPluginError,
    "invalid_plugin": InvalidPluginError,
    "plugin_failed": PluginFailedError,
    "too_many_requests": TooManyRequestsError,
    "too_many_connections": TooManyRequestsError,
    "shutting_down": ShuttingDownError,
    "storage_error": StorageError,
}


def error_class_for_code(code: str) -> Type[BrokerError]:
    """The exception class raised for a broker error code (:class:`BrokerError` for codes
    without a class of their own)."""
    return _BY_CODE.get(code, BrokerError)
