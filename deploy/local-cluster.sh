#!/usr/bin/env bash
# A local sidecache cluster to try: 3 NATS servers (JetStream, R3), a demo origin and 3
# sidecars, all on loopback. Ctrl-C stops everything.
#   deploy/local-cluster.sh            (builds first if dist/ is missing)
# Ports: origin 18080; sidecars 13128-13130 (proxy), 19091-19093 (admin), 17070-17072 (peer);
# NATS 14222-14224 (clients), 16222-16224 (routes).
set -euo pipefail
cd "$(dirname "$0")/.."
NATS=${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}
[ -x "$NATS" ] || { echo "nats-server not found: apt-get install nats-server" >&2; exit 1; }
[ -f dist/main.js ] || npm run build
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

routes="nats://127.0.0.1:16222,nats://127.0.0.1:16223,nats://127.0.0.1:16224"
for i in 0 1 2; do
  "$NATS" -a 127.0.0.1 -p $((14222 + i)) -js -sd "$work/nats$i" -n "nats$i" \
    --cluster_name sidecache-local --cluster "nats://127.0.0.1:$((16222 + i))" --routes "$routes" \
    > "$work/nats$i.log" 2>&1 &
  pids+=($!)
done
node dist/demo-origin.js 18080 > "$work/origin.log" 2>&1 &
pids+=($!)
sleep 2

token=local-admin-token
for i in 0 1 2; do
  SIDECACHE_UPSTREAM=http://127.0.0.1:18080 \
  SIDECACHE_LISTEN=127.0.0.1:$((13128 + i)) \
  SIDECACHE_ADMIN_LISTEN=127.0.0.1:$((19091 + i)) \
  SIDECACHE_PEER_LISTEN=127.0.0.1:$((17070 + i)) \
  SIDECACHE_NODE_ID=sidecar-$i \
  SIDECACHE_CLUSTER=local \
  SIDECACHE_NATS_URL=nats://127.0.0.1:14222,nats://127.0.0.1:14223,nats://127.0.0.1:14224 \
  SIDECACHE_CLUSTER_SECRET=local-cluster-secret-change-me \
  SIDECACHE_ADMIN_TOKEN=$token \
  SIDECACHE_LOG_LEVEL=warn \
  node dist/main.js > "$work/sidecar$i.log" 2>&1 &
  pids+=($!)
done
for i in 0 1 2; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$((19091 + i))/readyz" >/dev/null && break; sleep 0.2; done
done

cat <<MSG
sidecache local cluster is up (logs in $work).
  curl -i http://127.0.0.1:13128/news/1        # miss, fetched by the key's owner
  curl -i http://127.0.0.1:13129/news/1        # the same object from another sidecar
  curl -s http://127.0.0.1:18080/_count         # requests the origin served
  curl -s -XPOST -H 'authorization: Bearer $token' http://127.0.0.1:19091/purge -d '{"url":"/news/1"}'
  curl -s http://127.0.0.1:19091/cluster         # view, ring, epoch
  curl -s http://127.0.0.1:19091/metrics | grep ^sidecache_
  kill one sidecar (pgrep -f dist/main.js) and keep curling the others.
Ctrl-C stops everything.
MSG
wait
