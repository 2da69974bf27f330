"""Benign TLS peers for sensor/tests/tls.rs: the parts of the corpus no packaged server or client
plays. Each runs for a bounded time, prints what it did as one JSON line, and exits.

    corpus.py ws-server HOST PORT CERT KEY LIFE       WebSocket over TLS (websockets), pings every 4 s,
                                                      a ticker message every 5 s, an answer to each
    corpus.py ws-client URI CAFILE DURATION           message; the client sends one every 6 to 9 s
    corpus.py chat-server HOST PORT CERT KEY LIFE     a chat-like stream (asyncio TLS): both sides send
    corpus.py chat-client HOST PORT CAFILE DURATION   lines of 10 to 1,500 bytes at 0.3 to 4 s, and the
                                                      server acknowledges each line it reads
    corpus.py poll-server HOST PORT CERT KEY LIFE HOLD  HTTPS long-poll (http.server): each GET held for
                                                      HOLD seconds, then a small JSON answer (keep-alive)

Sizes and pauses come from seeded generators, so a run's shape is the same every time.
"""

import asyncio
import json
import random
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def server_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(cafile):
    # The test's self-signed certificate names every benign host: clients verify as browsers do.
    return ssl.create_default_context(cafile=cafile)


def report(**fields):
    print(json.dumps(fields), flush=True)


async def ws_server(host, port, cert, key, life):
    from websockets.asyncio.server import serve

    rng = random.Random(1)
    counts = {"connections": 0, "received": 0, "ticks": 0}

    async def handler(ws):
        counts["connections"] += 1

        async def ticker():
            while True:
                await asyncio.sleep(5)
                counts["ticks"] += 1
                pad = "x" * rng.randint(100, 300)
                await ws.send(json.dumps({"type": "ticker", "seq": counts["ticks"], "pad": pad}))

        task = asyncio.create_task(ticker())
        try:
            async for message in ws:
                counts["received"] += 1
                await ws.send(json.dumps({"type": "ack", "len": len(message)}))
        finally:
            task.cancel()

    async with serve(handler, host, port, ssl=server_context(cert, key), ping_interval=4,
                     ping_timeout=20):
        await asyncio.sleep(life)
    report(**counts)


async def ws_client(uri, cafile, duration):
    from websockets.asyncio.client import connect

    rng = random.Random(2)
    end = time.monotonic() + duration
    sent = received = 0
    async with connect(uri, ssl=client_context(cafile), ping_interval=4, ping_timeout=20) as ws:

        async def reader():
            nonlocal received
            async for _ in ws:
                received += 1

        task = asyncio.create_task(reader())
        while True:
            pause = rng.uniform(6, 9)
            if time.monotonic() + pause >= end:
                await asyncio.sleep(max(0.0, end - time.monotonic()))
                break
            await asyncio.sleep(pause)
            await ws.send(json.dumps({"type": "chat", "text": "y" * rng.randint(20, 400)}))
            sent += 1
        await ws.close()
        task.cancel()
    report(sent=sent, received=received)


async def chatter(rng, writer, end, counts):
    """Lines of random length at random pauses until `end`."""
    while True:
        pause = rng.uniform(0.3, 4.0)
        if time.monotonic() + pause >= end:
            return
        await asyncio.sleep(pause)
        writer.write(b"m" * rng.randint(10, 1500) + b"\n")
        await writer.drain()
        counts["sent"] += 1


async def chat_server(host, port, cert, key, life):
    rng = random.Random(3)
    end = time.monotonic() + life
    counts = {"connections": 0, "sent": 0, "received": 0}

    async def handle(reader, writer):
        counts["connections"] += 1
        talk = asyncio.create_task(chatter(rng, writer, end, counts))
        try:
            while line := await reader.readline():
                counts["received"] += 1
                writer.write(b"ack %d\n" % len(line))
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        talk.cancel()
        writer.close()

    server = await asyncio.start_server(handle, host, port, ssl=server_context(cert, key))
    async with server:
        await asyncio.sleep(life)
    report(**counts)


async def chat_client(host, port, cafile, duration):
    rng = random.Random(4)
    end = time.monotonic() + duration
    counts = {"sent": 0, "received": 0}
    reader, writer = await asyncio.open_connection(host, port, ssl=client_context(cafile))

    async def read():
        while await reader.readline():
            counts["received"] += 1

    task = asyncio.create_task(read())
    await chatter(rng, writer, end, counts)
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    writer.close()
    task.cancel()
    report(**counts)


def poll_server(host, port, cert, key, life, hold):
    served = [0]

    class Poll(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            time.sleep(hold)
            served[0] += 1
            body = json.dumps({"events": [{"id": served[0], "kind": "update"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer((host, port), Poll)
    httpd.daemon_threads = True
    httpd.socket = server_context(cert, key).wrap_socket(httpd.socket, server_side=True)
    threading.Timer(life, httpd.shutdown).start()
    httpd.serve_forever(poll_interval=0.2)
    report(served=served[0])


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "ws-server":
        asyncio.run(ws_server(args[0], int(args[1]), args[2], args[3], float(args[4])))
    elif cmd == "ws-client":
        asyncio.run(ws_client(args[0], args[1], float(args[2])))
    elif cmd == "chat-server":
        asyncio.run(chat_server(args[0], int(args[1]), args[2], args[3], float(args[4])))
    elif cmd == "chat-client":
        asyncio.run(chat_client(args[0], int(args[1]), args[2], float(args[3])))
    elif cmd == "poll-server":
        poll_server(args[0], int(args[1]), args[2], args[3], float(args[4]), float(args[5]))
    else:
        sys.exit(f"corpus.py: unknown command {cmd!r}; see the docstring for the commands")


if __name__ == "__main__":
    main(sys.argv)
