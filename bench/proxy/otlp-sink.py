#!/usr/bin/env python3
"""An OTLP/gRPC sink for bench/proxy/telemetry.sh (SINK=1).

It accepts every request over cleartext HTTP/2 (trace and metric exports alike), reads the
whole body, and answers gRPC OK with an empty response message, without decoding or storing
anything. A real `weft collector` pinned to one core stores ~11-14 k spans/s while the pair
at max rps makes ~40 k, so most spans were dropped at the proxies' queues and a max-rps run
never measured the cost of exporting every span; against this sink every span is sent.

Flow control as the collector's server (hyper): 1 MiB stream and connection windows, 16 KiB
frames; each frame's room is given back as it is read.

Usage: otlp-sink.py HOST:PORT (needs the `h2` package). Prints the requests and body bytes
it received when it is terminated.
"""

import asyncio
import signal
import sys

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, StreamEnded

WINDOW = 1 << 20
received = {"requests": 0, "bytes": 0}


class Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.conn.local_settings.initial_window_size = WINDOW
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(WINDOW - 65535)
        self.transport.write(self.conn.data_to_send())

    def data_received(self, data):
        for event in self.conn.receive_data(data):
            if isinstance(event, DataReceived):
                received["bytes"] += len(event.data)
                # Every frame's room is given back at once (to the connection, and to the
                # stream unless this frame ended it), as a server reading straight through.
                if event.flow_controlled_length:
                    self.conn.increment_flow_control_window(event.flow_controlled_length)
                    if not event.stream_ended:
                        self.conn.increment_flow_control_window(
                            event.flow_controlled_length, event.stream_id
                        )
            elif isinstance(event, StreamEnded):
                received["requests"] += 1
                stream = event.stream_id
                self.conn.send_headers(stream, [(":status", "200"), ("content-type", "application/grpc")])
                # An empty response message: uncompressed, length 0.
                self.conn.send_data(stream, b"\0\0\0\0\0")
                self.conn.send_headers(stream, [("grpc-status", "0")], end_stream=True)
        self.transport.write(self.conn.data_to_send())


async def main(address):
    host, port = address.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, host, int(port))
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with server:
        await stop
    print(f"requests {received['requests']} bytes {received['bytes']}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
