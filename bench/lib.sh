# Shared by the bench scripts (sourced): the mesh config they hand to weft.

# service_entry FILE PORT [EXTRA_LABELS [EXTRA_ENDPOINT_LINES [EXTRA_YAML]]]
# Writes FILE with the ServiceEntry of `upstream.default.svc.cluster.local`: one
# endpoint 127.0.0.1:PORT labelled app=upstream plus EXTRA_LABELS (", key: value"
# pairs), EXTRA_ENDPOINT_LINES under the endpoint, then EXTRA_YAML (more documents).
service_entry() {
  mkdir -p "$(dirname "$1")"
  {
    cat <<EOF
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: upstream
  namespace: default
spec:
  hosts: [upstream.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  endpoints:
  - address: 127.0.0.1
    ports: {http: $2}
    labels: {app: upstream${3:-}}
EOF
    if [ -n "${4:-}" ]; then printf '%s\n' "$4"; fi
    if [ -n "${5:-}" ]; then printf '%s\n' "$5"; fi
  } >"$1"
}
