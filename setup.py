"""Build the compiled parts: the Cython extensions and the cffi native module.

Switches come from environment variables, never argv (pip and cibuildwheel own argv):
  CAMERA_SERVICE_LINETRACE=1  build Cython modules with line tracing (for `make cov-cython`)
  CAMERA_SERVICE_DEBUG=1      -O0 -g, no Cython annotations stripped
  CAMERA_SERVICE_FORCE_CYTHON=1  regenerate the C of every .pyx (switching line tracing on/off)
"""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc"))

LINETRACE = os.environ.get("CAMERA_SERVICE_LINETRACE") == "1"
DEBUG = os.environ.get("CAMERA_SERVICE_DEBUG") == "1"

CYTHON_MODULES = [
    "camera_service.auth._rate_limit",
    "camera_service.rpc._jsonrpc",
    "camera_service.server._listener",
]


def cython_extensions():
    macros = [("CYTHON_TRACE_NOGIL", "1")] if LINETRACE else []
    compile_args = ["-O0", "-g"] if DEBUG else ["-O2"]
    extensions = [
        Extension(
            name,
            [os.path.join("pkg", *name.split(".")) + ".pyx"],
            define_macros=macros,
            extra_compile_args=compile_args,
        )
        for name in CYTHON_MODULES
    ]
    directives = {
        "language_level": 3,
        # Checked by hand in the hot path; see the comments next to each index/division.
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "linetrace": LINETRACE,
        "profile": False,
    }
    return cythonize(
        extensions,
        compiler_directives=directives,
        include_path=["pkg"],
        annotate=os.environ.get("CAMERA_SERVICE_ANNOTATE") == "1",
        force=os.environ.get("CAMERA_SERVICE_FORCE_CYTHON") == "1",
    )


setup(
    ext_modules=cython_extensions(),
    cffi_modules=["csrc/build_native.py:ffibuilder"],
    zip_safe=False,
)
