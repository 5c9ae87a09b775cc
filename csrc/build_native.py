"""cffi out-of-line API-mode builder for camera_service.devices._native.

The declarations (native.cdef) are partial (`...;`) so that struct layouts and constant values
come from the kernel headers of the build machine, on x86_64 and aarch64 alike.
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _read(name: str) -> str:
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


ffibuilder = FFI()
# One cdef file per kernel API: discovery and inotify, then streaming capture.
ffibuilder.cdef(_read("native.cdef"))
ffibuilder.cdef(_read("v4l2_capture.cdef"))
ffibuilder.set_source(
    "camera_service.devices._native",
    _read("native.c"),
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
