from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InitRequest(_message.Message):
    __slots__ = ("policy", "jgf")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    JGF_FIELD_NUMBER: _ClassVar[int]
    policy: str
    jgf: str
    def __init__(self, policy: _Optional[str] = ..., jgf: _Optional[str] = ...) -> None: ...

class InitResponse(_message.Message):
    __slots__ = ("status",)
    class ResultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        INIT_SUCCESS: _ClassVar[InitResponse.ResultType]
        INIT_ERROR: _ClassVar[InitResponse.ResultType]
        INIT_DENIED: _ClassVar[InitResponse.ResultType]
    INIT_SUCCESS: InitResponse.ResultType
    INIT_ERROR: InitResponse.ResultType
    INIT_DENIED: InitResponse.ResultType
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: InitResponse.ResultType
    def __init__(self, status: _Optional[_Union[InitResponse.ResultType, str]] = ...) -> None: ...

class MatchRequest(_message.Message):
    __slots__ = ("jobspec", "request", "reservation")
    JOBSPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    jobspec: str
    request: str
    reservation: bool
    def __init__(self, jobspec: _Optional[str] = ..., request: _Optional[str] = ..., reservation: _Optional[bool] = ...) -> None: ...

class MatchResponse(_message.Message):
    __slots__ = ("allocation", "jobid", "reserved", "at", "overhead", "status")
    class ResultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MATCH_SUCCESS: _ClassVar[MatchResponse.ResultType]
        MATCH_ERROR: _ClassVar[MatchResponse.ResultType]
        MATCH_DENIED: _ClassVar[MatchResponse.ResultType]
    MATCH_SUCCESS: MatchResponse.ResultType
    MATCH_ERROR: MatchResponse.ResultType
    MATCH_DENIED: MatchResponse.ResultType
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    JOBID_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    allocation: str
    jobid: int
    reserved: bool
    at: int
    overhead: float
    status: MatchResponse.ResultType
    def __init__(self, allocation: _Optional[str] = ..., jobid: _Optional[int] = ..., reserved: _Optional[bool] = ..., at: _Optional[int] = ..., overhead: _Optional[float] = ..., status: _Optional[_Union[MatchResponse.ResultType, str]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("jobID",)
    JOBID_FIELD_NUMBER: _ClassVar[int]
    jobID: int
    def __init__(self, jobID: _Optional[int] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("jobID", "error", "status")
    class ResultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CANCEL_SUCCESS: _ClassVar[CancelResponse.ResultType]
        CANCEL_REQUEST_ERROR: _ClassVar[CancelResponse.ResultType]
        CANCEL_ERROR: _ClassVar[CancelResponse.ResultType]
        CANCEL_DENIED: _ClassVar[CancelResponse.ResultType]
    CANCEL_SUCCESS: CancelResponse.ResultType
    CANCEL_REQUEST_ERROR: CancelResponse.ResultType
    CANCEL_ERROR: CancelResponse.ResultType
    CANCEL_DENIED: CancelResponse.ResultType
    JOBID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    jobID: int
    error: int
    status: CancelResponse.ResultType
    def __init__(self, jobID: _Optional[int] = ..., error: _Optional[int] = ..., status: _Optional[_Union[CancelResponse.ResultType, str]] = ...) -> None: ...

class MatchBatchRequest(_message.Message):
    __slots__ = ("requests", "stop_after_first_unallocated")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    STOP_AFTER_FIRST_UNALLOCATED_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[MatchRequest]
    stop_after_first_unallocated: bool
    def __init__(self, requests: _Optional[_Iterable[_Union[MatchRequest, _Mapping]]] = ..., stop_after_first_unallocated: _Optional[bool] = ...) -> None: ...

class MatchBatchResult(_message.Message):
    __slots__ = ("response", "denied", "message")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    response: MatchResponse
    denied: str
    message: str
    def __init__(self, response: _Optional[_Union[MatchResponse, _Mapping]] = ..., denied: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class MatchBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[MatchBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[MatchBatchResult, _Mapping]]] = ...) -> None: ...

class SatisfiabilityRequest(_message.Message):
    __slots__ = ("jobspec",)
    JOBSPEC_FIELD_NUMBER: _ClassVar[int]
    jobspec: str
    def __init__(self, jobspec: _Optional[str] = ...) -> None: ...

class SatisfiabilityResponse(_message.Message):
    __slots__ = ("satisfiable", "message", "invalid")
    SATISFIABLE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    INVALID_FIELD_NUMBER: _ClassVar[int]
    satisfiable: bool
    message: str
    invalid: bool
    def __init__(self, satisfiable: _Optional[bool] = ..., message: _Optional[str] = ..., invalid: _Optional[bool] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResourceAmount(_message.Message):
    __slots__ = ("type", "capacity", "free")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    type: str
    capacity: int
    free: int
    def __init__(self, type: _Optional[str] = ..., capacity: _Optional[int] = ..., free: _Optional[int] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("vertices", "edges", "nodes", "jobs_allocated", "jobs_reserved", "policy", "load_seconds", "matches", "match_min_seconds", "match_max_seconds", "match_avg_seconds", "resources", "nodes_down", "nodes_drained", "initialized", "next_jobid", "epoch")
    VERTICES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    JOBS_ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    JOBS_RESERVED_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    MATCH_MIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MATCH_MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MATCH_AVG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NODES_DOWN_FIELD_NUMBER: _ClassVar[int]
    NODES_DRAINED_FIELD_NUMBER: _ClassVar[int]
    INITIALIZED_FIELD_NUMBER: _ClassVar[int]
    NEXT_JOBID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    vertices: int
    edges: int
    nodes: int
    jobs_allocated: int
    jobs_reserved: int
    policy: str
    load_seconds: float
    matches: int
    match_min_seconds: float
    match_max_seconds: float
    match_avg_seconds: float
    resources: _containers.RepeatedCompositeFieldContainer[ResourceAmount]
    nodes_down: int
    nodes_drained: int
    initialized: bool
    next_jobid: int
    epoch: int
    def __init__(self, vertices: _Optional[int] = ..., edges: _Optional[int] = ..., nodes: _Optional[int] = ..., jobs_allocated: _Optional[int] = ..., jobs_reserved: _Optional[int] = ..., policy: _Optional[str] = ..., load_seconds: _Optional[float] = ..., matches: _Optional[int] = ..., match_min_seconds: _Optional[float] = ..., match_max_seconds: _Optional[float] = ..., match_avg_seconds: _Optional[float] = ..., resources: _Optional[_Iterable[_Union[ResourceAmount, _Mapping]]] = ..., nodes_down: _Optional[int] = ..., nodes_drained: _Optional[int] = ..., initialized: _Optional[bool] = ..., next_jobid: _Optional[int] = ..., epoch: _Optional[int] = ...) -> None: ...

class SetNodeStatusRequest(_message.Message):
    __slots__ = ("nodes", "status")
    NODES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedScalarFieldContainer[str]
    status: str
    def __init__(self, nodes: _Optional[_Iterable[str]] = ..., status: _Optional[str] = ...) -> None: ...

class SetNodeStatusResponse(_message.Message):
    __slots__ = ("unknown",)
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    unknown: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, unknown: _Optional[_Iterable[str]] = ...) -> None: ...

class AddNodesRequest(_message.Message):
    __slots__ = ("jgf", "parent_path")
    JGF_FIELD_NUMBER: _ClassVar[int]
    PARENT_PATH_FIELD_NUMBER: _ClassVar[int]
    jgf: str
    parent_path: str
    def __init__(self, jgf: _Optional[str] = ..., parent_path: _Optional[str] = ...) -> None: ...

class AddNodesResponse(_message.Message):
    __slots__ = ("vertices_added",)
    VERTICES_ADDED_FIELD_NUMBER: _ClassVar[int]
    vertices_added: int
    def __init__(self, vertices_added: _Optional[int] = ...) -> None: ...

class RemoveNodesRequest(_message.Message):
    __slots__ = ("nodes", "force")
    NODES_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedScalarFieldContainer[str]
    force: bool
    def __init__(self, nodes: _Optional[_Iterable[str]] = ..., force: _Optional[bool] = ...) -> None: ...

class RemoveNodesResponse(_message.Message):
    __slots__ = ("removed", "busy", "unknown", "jobs_affected")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    JOBS_AFFECTED_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    busy: _containers.RepeatedScalarFieldContainer[str]
    unknown: _containers.RepeatedScalarFieldContainer[str]
    jobs_affected: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, removed: _Optional[_Iterable[str]] = ..., busy: _Optional[_Iterable[str]] = ..., unknown: _Optional[_Iterable[str]] = ..., jobs_affected: _Optional[_Iterable[int]] = ...) -> None: ...

class UpdateAllocateRequest(_message.Message):
    __slots__ = ("jobid", "allocation", "duration", "at")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    jobid: int
    allocation: str
    duration: int
    at: int
    def __init__(self, jobid: _Optional[int] = ..., allocation: _Optional[str] = ..., duration: _Optional[int] = ..., at: _Optional[int] = ...) -> None: ...

class UpdateAllocateResponse(_message.Message):
    __slots__ = ("ok", "message", "overhead")
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    message: str
    overhead: float
    def __init__(self, ok: _Optional[bool] = ..., message: _Optional[str] = ..., overhead: _Optional[float] = ...) -> None: ...

class PartialCancelRequest(_message.Message):
    __slots__ = ("jobid", "allocation", "nodes")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    jobid: int
    allocation: str
    nodes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, jobid: _Optional[int] = ..., allocation: _Optional[str] = ..., nodes: _Optional[_Iterable[str]] = ...) -> None: ...

class PartialCancelResponse(_message.Message):
    __slots__ = ("full_removal", "noent")
    FULL_REMOVAL_FIELD_NUMBER: _ClassVar[int]
    NOENT_FIELD_NUMBER: _ClassVar[int]
    full_removal: bool
    noent: bool
    def __init__(self, full_removal: _Optional[bool] = ..., noent: _Optional[bool] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ("jobid",)
    JOBID_FIELD_NUMBER: _ClassVar[int]
    jobid: int
    def __init__(self, jobid: _Optional[int] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("found", "reserved", "at", "duration", "overhead", "allocation", "nodes")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    found: bool
    reserved: bool
    at: int
    duration: int
    overhead: float
    allocation: str
    nodes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, found: _Optional[bool] = ..., reserved: _Optional[bool] = ..., at: _Optional[int] = ..., duration: _Optional[int] = ..., overhead: _Optional[float] = ..., allocation: _Optional[str] = ..., nodes: _Optional[_Iterable[str]] = ...) -> None: ...
