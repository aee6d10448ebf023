#!/usr/bin/env python3
"""A userspace TCP proxy that delays every chunk by a fixed time in each direction.

    delayproxy.py UPSTREAM_PORT [--delay 0.05] [--listen-port 0]

Listens on 127.0.0.1 (an ephemeral port unless --listen-port is given), prints the port it
listens on as the first line of stdout, and forwards each connection to 127.0.0.1:UPSTREAM_PORT.
Each chunk read from one side is written to the other `delay` seconds after it was read
(50 ms each way = 100 ms round trip), in order; chunks are not held back for one another, so
the bandwidth is not limited beyond what the loopback and this process allow. Used by
`Benchmarks/run --rtt` to give a long-latency link to an otherwise local sshd.
"""

import argparse
import asyncio
import sys
import time

CHUNK = 256 * 1024


async def pump(reader, writer, delay):
    """Copy reader -> writer, each chunk released `delay` s after it arrived, order kept."""
    queue = asyncio.Queue()

    async def receive():
        try:
            while True:
                data = await reader.read(CHUNK)
                queue.put_nowait((time.monotonic() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            queue.put_nowait((time.monotonic() + delay, b""))

    async def send():
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return

    receiving = asyncio.ensure_future(receive())
    await send()
    receiving.cancel()


async def handle(client_reader, client_writer, upstream_port, delay):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, server_writer, delay),
                         pump(server_reader, client_writer, delay))
    for w in (client_writer, server_writer):
        w.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("upstream_port", type=int)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds added in each direction")
    parser.add_argument("--listen-port", type=int, default=0)
    args = parser.parse_args()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args.upstream_port, args.delay), "127.0.0.1", args.listen_port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
