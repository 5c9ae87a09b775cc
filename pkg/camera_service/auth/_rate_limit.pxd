cdef class TokenBucket:
    cdef double _rate
    cdef double _burst
    cdef double _tokens
    cdef double _last
    cdef bint _enabled

    cdef double take(self, double now) noexcept
