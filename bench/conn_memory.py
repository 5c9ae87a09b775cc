"""python -m bench.conn_memory: where the memory of an idle connection goes.

Runs our server in this process (same Application as `serve`, uvloop) with tracemalloc on, opens
N authenticated idle connections from a load-worker process, and prints the VmRSS growth per
connection next to the Python allocations per connection, by source line. The part of the RSS
growth that tracemalloc does not see is C-level memory (event loop handles, picows buffers,
malloc overhead).

    python -m bench.conn_memory --conns 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
import tracemalloc

from bench.common import mint_jwt, raise_nofile, read_status


async def measure(conns: int, top: int) -> None:
    from bench.load.runner import LoadOptions, WorkerPool
    from camera_service.app import Application
    from camera_service.config import load_config

    workdir = tempfile.mkdtemp(prefix="bench-connmem-")
    os.makedirs(os.path.join(workdir, "dev"))
    secret = secrets.token_hex(32)
    config = load_config(
        None,
        env={},
        overrides={
            "server": {"host": "127.0.0.1", "port": 0, "max_connections": conns + 100},
            "security": {
                "jwt_secret": secret,
                "state_dir": os.path.join(workdir, "var"),
                "rate_limit_rpm": 0,
            },
            "camera": {"device_dir": os.path.join(workdir, "dev")},
            "logging": {"level": "warning"},
        },
    )
    app = Application(config, env={})
    await app.start()
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(0.5)
        tracemalloc.start(1)
        rss0 = read_status(os.getpid())["VmRSS"]
        snap0 = tracemalloc.take_snapshot()
        options = LoadOptions(
            url=f"ws://127.0.0.1:{app.port}/ws", token=mint_jwt(secret), conns=conns, probe=False
        )
        pool = await loop.run_in_executor(None, WorkerPool, options, 300.0)
        try:
            connect = await loop.run_in_executor(None, pool.wait_ready, 120.0)
            await asyncio.sleep(1.0)
            rss1 = read_status(os.getpid())["VmRSS"]
            snap1 = tracemalloc.take_snapshot()
        finally:
            await loop.run_in_executor(None, pool.close)
    finally:
        tracemalloc.stop()
        await app.stop()
    n = connect["connected"]
    diff = snap1.compare_to(snap0, "lineno")
    traced = sum(d.size_diff for d in diff)
    print(
        f"{n} connections: VmRSS +{(rss1 - rss0) / n:,.0f} B/conn "
        f"(tracemalloc overhead included), Python allocations +{traced / n:,.0f} B/conn"
    )
    print(f"{'B/conn':>8} {'blocks/conn':>11}  where")
    for d in diff[:top]:
        frame = d.traceback[0]
        print(
            f"{d.size_diff / n:8.0f} {d.count_diff / n:11.2f}  {frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
        )


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--conns", type=int, default=1000)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()
    if not 1 <= args.conns <= 20000:
        p.error("--conns must be 1..20000")
    raise_nofile()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    t0 = time.monotonic()
    asyncio.run(measure(args.conns, args.top))
    print(f"({time.monotonic() - t0:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
