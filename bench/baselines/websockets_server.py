"""Baseline 2: the `websockets` library (asyncio implementation) with orjson.

python -m bench.baselines.websockets_server --config FILE
"""

from __future__ import annotations

import asyncio
import signal

from websockets.asyncio.server import serve

from bench.baselines.common import Session, install_loop, load_settings


async def main() -> None:
    settings = load_settings()
    secret = settings["secret"]

    async def handler(ws) -> None:
        if ws.request.path.split("?", 1)[0] != "/ws":
            await ws.close(1008, "unknown path")
            return
        session = Session(secret)
        async for message in ws:
            if isinstance(message, bytes):
                await ws.close(1003, "binary messages are not supported")
                return
            out = session.handle(message)
            if out is not None:
                await ws.send(out, text=True)

    async with serve(
        handler, settings["host"], settings["port"], compression=None, max_size=1 << 20
    ):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


if __name__ == "__main__":
    install_loop(load_settings()["uvloop"])
    asyncio.run(main())
