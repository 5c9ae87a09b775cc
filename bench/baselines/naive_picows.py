"""Baseline 1: a plain picows server with a Python listener and orjson (no Cython of ours).

python -m bench.baselines.naive_picows --config FILE
"""

from __future__ import annotations

import asyncio
import signal

from picows import WSCloseCode, WSListener, WSMsgType, ws_create_server

from bench.baselines.common import Session, install_loop, load_settings


class NaiveListener(WSListener):
    def __init__(self, secret: str):
        self.session = Session(secret)
        self.transport = None

    def on_ws_connected(self, transport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            out = self.session.handle(frame.get_payload_as_bytes())
            if out is not None:
                transport.send(WSMsgType.TEXT, out)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.BINARY:
            transport.send_close(WSCloseCode.UNSUPPORTED_DATA)
            transport.disconnect()


async def main() -> None:
    settings = load_settings()
    secret = settings["secret"]

    def route(request):
        if request.path.split(b"?", 1)[0] != b"/ws":
            return None  # picows answers 404
        return NaiveListener(secret)

    extra = {} if settings["aiofastnet"] else {"use_aiofastnet": False}
    server = await ws_create_server(route, settings["host"], settings["port"], **extra)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    install_loop(load_settings()["uvloop"])
    asyncio.run(main())
