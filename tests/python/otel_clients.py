"""Real OpenTelemetry Python SDK clients against a weft collector.

usage: otel_clients.py MODE ENDPOINT
  MODE grpc           OTLP/gRPC traces and metrics, ENDPOINT http://HOST:PORT
  MODE http-protobuf  OTLP/HTTP protobuf traces and metrics, ENDPOINT http://HOST:PORT
  MODE http-json      OTLP/HTTP JSON traces and metrics, ENDPOINT http://HOST:PORT
                      (the exporter of requirements-json.txt, in its own venv)
  MODE zipkin         Zipkin v2 JSON traces, ENDPOINT http://HOST:PORT/api/v2/spans

Exports one trace (a SERVER span with a CLIENT child and an event) and, for
OTLP, one counter; prints {"trace_id": HEX, "spans": N, "service": NAME} and
exits 0 once every export succeeded. Exit 3: the packages are missing (run
scripts/test); exit 1: an export failed.
"""

import json
import sys

try:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as error:  # pragma: no cover
    print(f"missing Python packages ({error}); run scripts/test", file=sys.stderr)
    sys.exit(3)


class Checked:
    """Wraps an exporter and remembers whether every export succeeded."""

    def __init__(self, inner):
        self.inner = inner
        self.ok = True

    def export(self, spans):
        result = self.inner.export(spans)
        if result != SpanExportResult.SUCCESS:
            self.ok = False
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def exporters(mode, endpoint):
    try:
        if mode == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            return (
                OTLPSpanExporter(endpoint=endpoint, insecure=True),
                OTLPMetricExporter(endpoint=endpoint, insecure=True),
            )
        if mode == "http-protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            return (
                OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"),
                OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"),
            )
        if mode == "http-json":
            from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.exporter.otlp.json.http.metric_exporter import OTLPMetricExporter

            return (
                OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"),
                OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"),
            )
        if mode == "zipkin":
            from opentelemetry.exporter.zipkin.json import ZipkinExporter

            return ZipkinExporter(endpoint=endpoint), None
    except ImportError as error:
        print(f"missing Python packages ({error}); run scripts/test", file=sys.stderr)
        sys.exit(3)
    print(f"unknown mode {mode!r}", file=sys.stderr)
    sys.exit(2)


def main():
    mode, endpoint = sys.argv[1], sys.argv[2]
    service = f"py-{mode}"
    resource = Resource.create({"service.name": service, "service.version": "1.0"})
    span_exporter, metric_exporter = exporters(mode, endpoint)
    checked = Checked(span_exporter)
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(checked))
    tracer = provider.get_tracer("weft-test", "0.1")
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "GET")
        root.set_attribute("http.response.status_code", 200)
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as child:
            child.set_attribute("peer.service", "payments")
            child.add_event("retry", {"attempt": 2})
            child.set_status(Status(StatusCode.ERROR, "card declined"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()

    metrics_ok = True
    if metric_exporter is not None:
        reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=60000)
        meters = MeterProvider(resource=resource, metric_readers=[reader])
        counter = meters.get_meter("weft-test").create_counter("py_requests")
        counter.add(3, {"route": "/checkout"})
        metrics_ok = reader.force_flush(timeout_millis=30000)
        meters.shutdown()

    print(json.dumps({"trace_id": trace_id, "spans": 2, "service": service}))
    sys.exit(0 if checked.ok and metrics_ok else 1)


if __name__ == "__main__":
    main()
