#!/usr/bin/env bash
# Brings deploy/compose.yaml up with podman-compose, sends traffic through the three apps, purges,
# kills one sidecar, watches the ring close over the gap, and tears everything down.
#   deploy/compose-demo.sh          (root; podman, podman-compose; mmdebstrap for stand-ins)
# SIDECACHE_IMAGE, NATS_IMAGE and APP_IMAGE name the images; unset, the sidecache image is built
# from deploy/Containerfile and the others are stand-ins from deploy/stand-in-base.sh.
set -euo pipefail
cd "$(dirname "$0")"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/podman-containers.conf}
project=sidecache-demo
started=$(date +%s)
say() { printf '[%3ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }

if [ -z "${APP_IMAGE:-}" ] || [ -z "${SIDECACHE_IMAGE:-}" ]; then node_image=${NODE_IMAGE:-$(./stand-in-base.sh node)}; fi
export APP_IMAGE=${APP_IMAGE:-$node_image}
export NATS_IMAGE=${NATS_IMAGE:-$(./stand-in-base.sh nats)}
if [ -z "${SIDECACHE_IMAGE:-}" ]; then
  export SIDECACHE_IMAGE=localhost/sidecache:latest
  say "building $SIDECACHE_IMAGE on $node_image"
  podman build --quiet --format docker --network host --build-arg "NODE_IMAGE=$node_image" -f Containerfile -t "$SIDECACHE_IMAGE" .. >/dev/null
fi
say "images: sidecache $SIDECACHE_IMAGE, nats $NATS_IMAGE, app $APP_IMAGE"

# Debian 12's podman-compose (1.0.3) needs compose/podman-host-net.sh for network_mode: host.
compose() { podman-compose --podman-path "$PWD/compose/podman-host-net.sh" -p "$project" -f compose.yaml "$@"; }
teardown() {
  say "tearing down"
  compose down -v >/dev/null 2>&1 || true
  podman volume rm -f "${project}_nats-0" "${project}_nats-1" "${project}_nats-2" >/dev/null 2>&1 || true
  podman network rm -f "${project}_default" >/dev/null 2>&1 || true
  say "down: $(podman ps -a --filter "label=io.podman.compose.project=$project" -q | wc -l) containers left"
}
trap teardown EXIT
compose up -d > "${TMPDIR:-/tmp}/$project-up.log" 2>&1 || { tail -n 40 "${TMPDIR:-/tmp}/$project-up.log"; exit 1; }
running=$(podman ps --filter "label=io.podman.compose.project=$project" --format '{{.Names}}' | sort)
say "up: $(echo $running)"
[ "$(echo "$running" | grep -c .)" = 10 ] || { say "expected 10 containers running"; tail -n 40 "${TMPDIR:-/tmp}/$project-up.log"; exit 1; }

get() { curl -s -m 10 -o /dev/null -w '%{http_code}' "$@" || true; }
wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do "$@" && return 0; sleep 0.2; done
  say "timed out waiting for $what"; compose logs 2>&1 | tail -n 60; exit 1
}
ctr() { podman ps -q --filter "label=io.podman.compose.project=$project" --filter "label=com.docker.compose.service=$1"; }
# The command line inside a sidecar's container, with that container's SIDECACHE_ADMIN_* variables.
cli() { local c=$1; shift; podman exec "$(ctr "$c")" sidecache "$@" | sed 's/^/    /'; }
for admin in 29091 29092 29093; do wait_for "sidecar on $admin to be ready" 90 test "$(get "http://127.0.0.1:$admin/readyz")" = 200; done
for app in 28081 28082 28083; do wait_for "app on $app" 30 test "$(get "http://127.0.0.1:$app/_count")" = 200; done
wait_for "a ring of three" 30 sh -c "curl -s http://127.0.0.1:29091/cluster | grep -q '\"ring\":\[\"[^]]*,[^]]*,[^]]*\"\]'"
say "sidecache status, from sidecar-1:"; cli sidecar-1 status

fetch() { # app port, path: the app's answer and its sidecar's Cache-Status
  curl -s -m 10 -D - "http://127.0.0.1:$1$2" | tr -d '\r' | awk -v p="$1" -v path="$2" '
    /^x-sidecar-cache-status:/ { sub(/^[^:]*: /, ""); cs = $0 } /^app on/ { body = $0 }
    END { printf "  GET %s via app %s -> %s\n      Cache-Status: %s\n", path, p, body, cs }'
}
count() { curl -s -m 5 http://127.0.0.1:28080/_count; }
say "traffic: one page through each app in turn"
for app in 28081 28082 28083; do fetch "$app" /news/1; done
say "origin requests so far: $(count)"
say "traffic: 10 pages x 3 apps x 3 rounds"
for _ in 1 2 3; do for i in $(seq 1 10); do for app in 28081 28082 28083; do get "http://127.0.0.1:$app/page/$i" >/dev/null; done; done; done
say "90 requests done; origin requests so far: $(count) (one per page and /news/1)"

say "sidecache purge --url /news/1, from sidecar-1:"; cli sidecar-1 purge --url /news/1
fetch 28082 /news/1
say "origin requests so far: $(count)"

victim=$(ctr sidecar-3)
say "kill -9 sidecar-3 ($victim)"
podman kill --signal KILL "$victim" >/dev/null
podman stop -t 0 "$victim" >/dev/null 2>&1 || true  # no restart: on-failure would bring it back
# Until its heartbeats are missed for SIDECACHE_HEARTBEAT_TTL, sidecar-3 is still a member: a
# purge now is applied by the others and names it missing (the command exits 3: incomplete).
say "sidecache purge --url /page/5 at once, from sidecar-1:"; cli sidecar-1 purge --url /page/5 || say "exit $? (incomplete)"
wait_for "the ring to drop sidecar-3" 60 sh -c "curl -s http://127.0.0.1:29091/cluster | grep -q '\"ring\":\[\"sidecar-1\",\"sidecar-2\"\]'"
say "sidecache status, from sidecar-1:"; cli sidecar-1 status
for app in 28081 28082; do fetch "$app" /page/3; done
fetch 28083 /page/3
say "sidecache purge --url /page/3 with one member gone, from sidecar-2:"; cli sidecar-2 purge --url /page/3
say "origin requests in all: $(count)"
