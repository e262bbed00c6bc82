from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Codec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CODEC_NONE: _ClassVar[Codec]
    CODEC_ZSTD: _ClassVar[Codec]
    CODEC_GZIP: _ClassVar[Codec]
CODEC_NONE: Codec
CODEC_ZSTD: Codec
CODEC_GZIP: Codec

class IngestRequest(_message.Message):
    __slots__ = ("hello", "batch")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    batch: Batch
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("node_name", "agent_version")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    agent_version: str
    def __init__(self, node_name: _Optional[str] = ..., agent_version: _Optional[str] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("batch_id", "sent_at_us", "chunks", "codec", "packed")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_US_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    sent_at_us: int
    chunks: _containers.RepeatedCompositeFieldContainer[Chunk]
    codec: Codec
    packed: bytes
    def __init__(self, batch_id: _Optional[int] = ..., sent_at_us: _Optional[int] = ..., chunks: _Optional[_Iterable[_Union[Chunk, _Mapping]]] = ..., codec: _Optional[_Union[Codec, str]] = ..., packed: _Optional[bytes] = ...) -> None: ...

class Chunks(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[Chunk]
    def __init__(self, chunks: _Optional[_Iterable[_Union[Chunk, _Mapping]]] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("source", "source_key", "namespace", "log_type", "position", "time_us", "level", "message", "request_id", "user", "action", "app", "pid", "fields_json", "flags", "claimed_host", "relayed_host")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LOG_TYPE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TIME_US_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_JSON_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_HOST_FIELD_NUMBER: _ClassVar[int]
    RELAYED_HOST_FIELD_NUMBER: _ClassVar[int]
    source: str
    source_key: str
    namespace: str
    log_type: str
    position: _containers.RepeatedScalarFieldContainer[int]
    time_us: _containers.RepeatedScalarFieldContainer[int]
    level: bytes
    message: _containers.RepeatedScalarFieldContainer[str]
    request_id: _containers.RepeatedScalarFieldContainer[str]
    user: _containers.RepeatedScalarFieldContainer[str]
    action: _containers.RepeatedScalarFieldContainer[str]
    app: _containers.RepeatedScalarFieldContainer[str]
    pid: _containers.RepeatedScalarFieldContainer[int]
    fields_json: _containers.RepeatedScalarFieldContainer[str]
    flags: bytes
    claimed_host: _containers.RepeatedScalarFieldContainer[str]
    relayed_host: str
    def __init__(self, source: _Optional[str] = ..., source_key: _Optional[str] = ..., namespace: _Optional[str] = ..., log_type: _Optional[str] = ..., position: _Optional[_Iterable[int]] = ..., time_us: _Optional[_Iterable[int]] = ..., level: _Optional[bytes] = ..., message: _Optional[_Iterable[str]] = ..., request_id: _Optional[_Iterable[str]] = ..., user: _Optional[_Iterable[str]] = ..., action: _Optional[_Iterable[str]] = ..., app: _Optional[_Iterable[str]] = ..., pid: _Optional[_Iterable[int]] = ..., fields_json: _Optional[_Iterable[str]] = ..., flags: _Optional[bytes] = ..., claimed_host: _Optional[_Iterable[str]] = ..., relayed_host: _Optional[str] = ...) -> None: ...

class IngestReply(_message.Message):
    __slots__ = ("batch_id", "stored", "duplicates", "dropped", "error")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    stored: int
    duplicates: int
    dropped: int
    error: str
    def __init__(self, batch_id: _Optional[int] = ..., stored: _Optional[int] = ..., duplicates: _Optional[int] = ..., dropped: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class Filters(_message.Message):
    __slots__ = ("since", "until", "date", "min_level", "level", "request_id", "user", "host", "message", "message_regex", "log_type", "source", "namespace", "app", "action", "where")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    MIN_LEVEL_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_REGEX_FIELD_NUMBER: _ClassVar[int]
    LOG_TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    since: str
    until: str
    date: str
    min_level: str
    level: str
    request_id: str
    user: str
    host: str
    message: str
    message_regex: str
    log_type: str
    source: str
    namespace: str
    app: str
    action: str
    where: str
    def __init__(self, since: _Optional[str] = ..., until: _Optional[str] = ..., date: _Optional[str] = ..., min_level: _Optional[str] = ..., level: _Optional[str] = ..., request_id: _Optional[str] = ..., user: _Optional[str] = ..., host: _Optional[str] = ..., message: _Optional[str] = ..., message_regex: _Optional[str] = ..., log_type: _Optional[str] = ..., source: _Optional[str] = ..., namespace: _Optional[str] = ..., app: _Optional[str] = ..., action: _Optional[str] = ..., where: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("filters", "limit", "order", "purpose", "after_seq", "cursor_json")
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    CURSOR_JSON_FIELD_NUMBER: _ClassVar[int]
    filters: Filters
    limit: int
    order: str
    purpose: str
    after_seq: int
    cursor_json: str
    def __init__(self, filters: _Optional[_Union[Filters, _Mapping]] = ..., limit: _Optional[int] = ..., order: _Optional[str] = ..., purpose: _Optional[str] = ..., after_seq: _Optional[int] = ..., cursor_json: _Optional[str] = ...) -> None: ...

class EventPage(_message.Message):
    __slots__ = ("events_json", "last_seq", "cursor_json")
    EVENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    CURSOR_JSON_FIELD_NUMBER: _ClassVar[int]
    events_json: _containers.RepeatedScalarFieldContainer[str]
    last_seq: int
    cursor_json: str
    def __init__(self, events_json: _Optional[_Iterable[str]] = ..., last_seq: _Optional[int] = ..., cursor_json: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("name", "ip", "connected", "last_seen", "events", "lag_seconds", "clock_skew_seconds", "collector")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CLOCK_SKEW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    ip: str
    connected: bool
    last_seen: float
    events: int
    lag_seconds: float
    clock_skew_seconds: float
    collector: str
    def __init__(self, name: _Optional[str] = ..., ip: _Optional[str] = ..., connected: _Optional[bool] = ..., last_seen: _Optional[float] = ..., events: _Optional[int] = ..., lag_seconds: _Optional[float] = ..., clock_skew_seconds: _Optional[float] = ..., collector: _Optional[str] = ...) -> None: ...

class CollectorStatus(_message.Message):
    __slots__ = ("name", "version", "address", "started_at", "last_heartbeat", "alive")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    address: str
    started_at: float
    last_heartbeat: float
    alive: bool
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., address: _Optional[str] = ..., started_at: _Optional[float] = ..., last_heartbeat: _Optional[float] = ..., alive: _Optional[bool] = ...) -> None: ...

class ForwarderStatus(_message.Message):
    __slots__ = ("name", "state", "lag_events", "last_error", "last_error_time_us")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAG_EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_TIME_US_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    lag_events: int
    last_error: str
    last_error_time_us: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., lag_events: _Optional[int] = ..., last_error: _Optional[str] = ..., last_error_time_us: _Optional[int] = ...) -> None: ...

class AlertStatus(_message.Message):
    __slots__ = ("labels", "summary", "count", "firing_since")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRING_SINCE_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    summary: str
    count: int
    firing_since: float
    def __init__(self, labels: _Optional[_Mapping[str, str]] = ..., summary: _Optional[str] = ..., count: _Optional[int] = ..., firing_since: _Optional[float] = ...) -> None: ...

class AlertmanagerStatus(_message.Message):
    __slots__ = ("url", "last_error", "last_error_time")
    URL_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_TIME_FIELD_NUMBER: _ClassVar[int]
    url: str
    last_error: str
    last_error_time: float
    def __init__(self, url: _Optional[str] = ..., last_error: _Optional[str] = ..., last_error_time: _Optional[float] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("version", "uptime_seconds", "storage_bytes", "event_count", "nodes", "forwarders", "next_purge", "collector", "last_seq", "collectors", "scoped", "alerting_state", "alerts", "alertmanagers")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    FORWARDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PURGE_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    COLLECTORS_FIELD_NUMBER: _ClassVar[int]
    SCOPED_FIELD_NUMBER: _ClassVar[int]
    ALERTING_STATE_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    ALERTMANAGERS_FIELD_NUMBER: _ClassVar[int]
    version: str
    uptime_seconds: float
    storage_bytes: int
    event_count: int
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    forwarders: _containers.RepeatedCompositeFieldContainer[ForwarderStatus]
    next_purge: float
    collector: str
    last_seq: int
    collectors: _containers.RepeatedCompositeFieldContainer[CollectorStatus]
    scoped: bool
    alerting_state: str
    alerts: _containers.RepeatedCompositeFieldContainer[AlertStatus]
    alertmanagers: _containers.RepeatedCompositeFieldContainer[AlertmanagerStatus]
    def __init__(self, version: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., storage_bytes: _Optional[int] = ..., event_count: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ..., forwarders: _Optional[_Iterable[_Union[ForwarderStatus, _Mapping]]] = ..., next_purge: _Optional[float] = ..., collector: _Optional[str] = ..., last_seq: _Optional[int] = ..., collectors: _Optional[_Iterable[_Union[CollectorStatus, _Mapping]]] = ..., scoped: _Optional[bool] = ..., alerting_state: _Optional[str] = ..., alerts: _Optional[_Iterable[_Union[AlertStatus, _Mapping]]] = ..., alertmanagers: _Optional[_Iterable[_Union[AlertmanagerStatus, _Mapping]]] = ...) -> None: ...

class EvidenceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EvidenceReply(_message.Message):
    __slots__ = ("checkpoint_json", "public_keys_pem", "head_seq", "head_link_hex", "bundle_attestation_json")
    CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_PEM_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEAD_LINK_HEX_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_ATTESTATION_JSON_FIELD_NUMBER: _ClassVar[int]
    checkpoint_json: str
    public_keys_pem: _containers.RepeatedScalarFieldContainer[str]
    head_seq: int
    head_link_hex: str
    bundle_attestation_json: str
    def __init__(self, checkpoint_json: _Optional[str] = ..., public_keys_pem: _Optional[_Iterable[str]] = ..., head_seq: _Optional[int] = ..., head_link_hex: _Optional[str] = ..., bundle_attestation_json: _Optional[str] = ...) -> None: ...

class BundlePage(_message.Message):
    __slots__ = ("lines", "masked", "evidence")
    LINES_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    masked: _containers.RepeatedScalarFieldContainer[bool]
    evidence: EvidenceReply
    def __init__(self, lines: _Optional[_Iterable[str]] = ..., masked: _Optional[_Iterable[bool]] = ..., evidence: _Optional[_Union[EvidenceReply, _Mapping]] = ...) -> None: ...

class SettingsRequest(_message.Message):
    __slots__ = ("verb", "kind", "name", "body_json", "dry_run")
    VERB_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BODY_JSON_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    verb: str
    kind: str
    name: str
    body_json: str
    dry_run: bool
    def __init__(self, verb: _Optional[str] = ..., kind: _Optional[str] = ..., name: _Optional[str] = ..., body_json: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class SettingsReply(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class NoteRequest(_message.Message):
    __slots__ = ("text", "namespace")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    text: str
    namespace: str
    def __init__(self, text: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class NoteReply(_message.Message):
    __slots__ = ("seq", "id")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    seq: int
    id: str
    def __init__(self, seq: _Optional[int] = ..., id: _Optional[str] = ...) -> None: ...
