"""An upstream application that extracts trace context with the
OpenTelemetry SDK's own propagators and reports what it saw.

Prints `PORT <n>` once listening on 127.0.0.1:0. Every request is answered
200 with JSON: for each format (w3c, b3multi, b3single) the extracted trace
id, parent span id, sampled flag and validity, plus the trace headers
received.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import trace
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATORS = {
    "w3c": TraceContextTextMapPropagator(),
    "b3multi": B3MultiFormat(),
    "b3single": B3SingleFormat(),
}
TRACE_HEADERS = (
    "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
    "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "x-request-id",
    "x-weft-peer",
)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        carrier = {k.lower(): v for k, v in self.headers.items()}
        report = {"headers": {h: carrier[h] for h in TRACE_HEADERS if h in carrier}}
        for name, propagator in PROPAGATORS.items():
            context = propagator.extract(carrier=carrier)
            span_context = trace.get_current_span(context).get_span_context()
            report[name] = {
                "valid": span_context.is_valid,
                "trace_id": format(span_context.trace_id, "032x"),
                "span_id": format(span_context.span_id, "016x"),
                "sampled": span_context.trace_flags.sampled,
            }
        body = json.dumps(report).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
