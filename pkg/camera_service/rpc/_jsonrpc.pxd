# Declarations the listener (server/_listener.pyx) cimports, so that its per-frame calls into
# the dispatcher are C calls rather than Python attribute lookups. Python code may write only
# what the session gate changes (auth_failures, close_after_response), `closed` (tests of a
# connection gone mid-call) and the live `max_batch`.

cdef class CallContext:
    cdef readonly str client_id
    cdef readonly object session
    cdef readonly int role_level
    cdef readonly double expires_at
    cdef readonly object bucket
    cdef public int auth_failures
    cdef readonly object send
    cdef readonly long long request_count
    cdef readonly long long error_count
    cdef public bint closed
    cdef public object close_after_response


cdef class MethodEntry:
    cdef readonly str name
    cdef readonly bytes name_utf8
    cdef readonly object handler
    cdef readonly object constant
    cdef readonly int role_level
    cdef readonly bint is_async
    cdef readonly bint binds_context
    cdef readonly long long calls
    cdef readonly long long errors


cdef class RequestStats:
    cdef readonly long long total_requests
    cdef readonly long long total_errors
    cdef dict _error_counts


cdef class Dispatcher:
    cdef dict _methods
    cdef list _entry_list
    cdef public int max_batch
    cdef readonly object authorizer
    cdef readonly RequestStats stats
    cdef set _tasks
    cdef object _exact_payload
    cdef object _exact_doc

    cpdef object handle(self, CallContext ctx, bytes payload)
    cdef object _handle_general(self, CallContext ctx, bytes payload)
    cdef object _internal_error(self, CallContext ctx, str method, bytes id_json, bint has_id,
                                str correlation_id)
    cdef object _handle_batch(self, CallContext ctx, list items, bytes payload)
    cdef object _handle_one(self, CallContext ctx, dict req, bytes payload, Py_ssize_t index)
    cdef object _invoke(self, CallContext ctx, MethodEntry entry, object params, bytes id_json,
                        bint has_id)
    cdef object _fast_path(self, CallContext ctx, bytes payload)
    cdef object _find_entry(self, const char* name, Py_ssize_t size)
    cdef object _exact_id(self, bytes payload, Py_ssize_t index, object fallback)
    cdef object _envelope_error(self, CallContext ctx, str reason, bytes id_json)
    cdef void _count_request(self, CallContext ctx)
    cdef void _count_error(self, int code, CallContext ctx)
    cdef void _admit(self, CallContext ctx) except *
    cdef void _authorize(self, CallContext ctx, MethodEntry entry, dict params) except *
    cdef object _call_bound(self, CallContext ctx, MethodEntry entry, object params)
    cdef void _spawn(self, coro)
