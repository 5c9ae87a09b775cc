"""atheris harness: the JSON-RPC envelope (Dispatcher.handle) on arbitrary bytes.

    .venv/bin/python fuzz/fuzz_envelope.py -max_total_time=60 -artifact_prefix=build/fuzz/

A real Application is started once (127.0.0.1:0, empty device directory) and every input goes
through its dispatcher with a fresh admin connection context. Inputs whose first byte is odd
are turned into structured requests/batches (every registered method, any id, any params,
real and bad tokens); even ones are sent as they are. Invariants (fuzz_support.check_reply):
no exception leaves the dispatcher, and the reply is exactly what PROTOCOL.md sections 2-5
demand (valid JSON-RPC 2.0, the request's id echoed, section 3 codes and messages, no reply
to notifications). Messages that are not valid UTF-8 never reach the dispatcher in the server
(the listener closes 1007); for them only "no exception" is checked.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["camera_service", "fuzz_support"]):
    import fuzz_support
    from fuzz_support import FuzzService, Unjudgeable, check_reply, encode

    from camera_service.server._listener import is_valid_utf8

SERVICE: FuzzService | None = None

WEIRD_METHODS = ["", "Ping", "ping ", "rpc.discover", "authenticate\x00", "x" * 200]
VERSIONS = ["2.0", "2.0", "2.0", "2.0", "1.0", "2.0 ", 2.0, 2, None, ""]
AUTH_TYPES = ["auto", "jwt", "api_key", "JWT", "", None, 1]


def any_value(fdp: atheris.FuzzedDataProvider, depth: int = 0):
    kind = fdp.ConsumeIntInRange(0, 9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 24))  # up to 192-bit integers
    if kind == 3:
        return fdp.ConsumeRegularFloat()
    if kind == 4:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 16))  # may hold lone surrogates
    if kind == 5:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 16))
    if kind == 6:
        return fdp.ConsumeIntInRange(-3, 3)
    if kind in (7, 8):
        return [any_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {
        fdp.ConsumeUnicode(4): any_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))
    }


def request(fdp: atheris.FuzzedDataProvider, service: FuzzService) -> dict:
    doc: dict = {}
    order = fdp.ConsumeIntInRange(0, 23)
    members = []
    if fdp.ConsumeIntInRange(0, 9):
        members.append(
            (
                "jsonrpc",
                fdp.PickValueInList(VERSIONS) if fdp.ConsumeIntInRange(0, 7) else any_value(fdp),
            )
        )
    if fdp.ConsumeIntInRange(0, 9):
        choice = fdp.ConsumeIntInRange(0, 9)
        method = (
            fdp.PickValueInList(list(fuzz_support.METHODS))
            if choice < 7
            else fdp.PickValueInList(WEIRD_METHODS)
            if choice < 9
            else any_value(fdp)
        )
        members.append(("method", method))
    if fdp.ConsumeIntInRange(0, 3):
        members.append(("id", any_value(fdp)))
    if fdp.ConsumeIntInRange(0, 2):
        members.append(
            ("params", params(fdp, service) if fdp.ConsumeIntInRange(0, 4) else any_value(fdp))
        )
    if not fdp.ConsumeIntInRange(0, 7):
        members.append((fdp.ConsumeUnicode(6), any_value(fdp)))
    # a few key orders (the fast path accepts any order of jsonrpc/method/id)
    for _ in range(order % max(len(members), 1)):
        members.append(members.pop(0))
    if order >= 12:
        members.reverse()
    for key, value in members:
        doc[key] = value
    return doc


def params(fdp: atheris.FuzzedDataProvider, service: FuzzService) -> dict:
    out: dict = {}
    node = f"{service.device_dir}/video{fdp.ConsumeIntInRange(0, 99)}"
    if fdp.ConsumeIntInRange(0, 3):
        out["device"] = (
            fdp.PickValueInList(
                [
                    node,
                    "camera0",
                    "camera",
                    "camera01",
                    "camera\u00b2",
                    "/dev/video0",
                    "",
                    node + "x",
                    "camera" + "9" * 30,
                ]
            )
            if fdp.ConsumeBool()
            else any_value(fdp)
        )
    for name in ("auth_token", "token"):
        if not fdp.ConsumeIntInRange(0, 5):
            out[name] = (
                fdp.PickValueInList(service.tokens)
                if fdp.ConsumeIntInRange(0, 3)
                else any_value(fdp)
            )
    if not fdp.ConsumeIntInRange(0, 4):
        out["auth_type"] = fdp.PickValueInList(AUTH_TYPES)
    if not fdp.ConsumeIntInRange(0, 4):
        out[fdp.ConsumeUnicode(6)] = any_value(fdp)
    return out


def structured(fdp: atheris.FuzzedDataProvider, service: FuzzService) -> bytes:
    kind = fdp.ConsumeIntInRange(0, 15)
    if kind < 10:
        doc = request(fdp, service)
    elif kind < 14:
        doc = [
            request(fdp, service) if fdp.ConsumeIntInRange(0, 5) else any_value(fdp)
            for _ in range(fdp.ConsumeIntInRange(0, 6))
        ]
    elif kind == 14:
        # around the max_batch limit of 100
        one = request(fdp, service)
        doc = [one] * fdp.ConsumeIntInRange(95, 105)
    else:
        doc = any_value(fdp)
    return encode(doc, fdp.ConsumeIntInRange(0, 3))


def TestOneInput(data: bytes) -> None:
    service = SERVICE
    if data and data[0] & 1:
        payload = structured(atheris.FuzzedDataProvider(data[1:]), service)
    else:
        payload = data[1:]
    reply = service.handle(service.new_context(), payload)  # must never raise
    if not is_valid_utf8(payload):
        assert reply is None or type(reply) is bytes, reply
        return
    try:
        check_reply(service, payload, reply)
    except Unjudgeable:
        return  # an input the oracle cannot judge (see fuzz/README.md)


def main() -> None:
    global SERVICE
    # Every failed authenticate logs a warning; only errors (a -32603 has one) stay visible.
    logging.basicConfig(level=logging.ERROR)
    logging.disable(logging.WARNING)
    workdir = tempfile.mkdtemp(prefix="camera-fuzz-envelope-")
    atexit.register(shutil.rmtree, workdir, True)
    SERVICE = FuzzService(workdir)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
