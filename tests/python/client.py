"""A client application instrumented with the OpenTelemetry SDK: starts a
trace, injects it in one format, and calls a service through the weft
sidecar used as its HTTP proxy (absolute-form requests).

usage: client.py FORMAT PROXY_URL TARGET_URL
FORMAT: w3c | b3multi | b3single. Prints JSON: the client span's trace id
and span id, and the upstream's report.
"""
import json
import sys
import urllib.request

from opentelemetry import trace
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATORS = {
    "w3c": TraceContextTextMapPropagator(),
    "b3multi": B3MultiFormat(),
    "b3single": B3SingleFormat(),
}


def main():
    fmt, proxy, target = sys.argv[1:4]
    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("weft-conformance-client")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
    with tracer.start_as_current_span("client-call", kind=trace.SpanKind.CLIENT) as span:
        headers = {}
        PROPAGATORS[fmt].inject(headers)
        request = urllib.request.Request(target, headers=headers)
        with opener.open(request, timeout=20) as response:
            upstream = json.loads(response.read())
            status = response.status
        context = span.get_span_context()
        print(json.dumps({
            "status": status,
            "trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x"),
            "sent": headers,
            "upstream": upstream,
        }))


if __name__ == "__main__":
    sys.exit(main())
