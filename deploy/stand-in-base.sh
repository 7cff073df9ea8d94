#!/usr/bin/env bash
# Stand-in base images for machines that reach no image registry, built from Debian's packages
# (mmdebstrap) and the npm registry, imported into podman, and printed by name:
#   deploy/stand-in-base.sh node   Debian bookworm shaped like node:24-bookworm-slim (Node and npm
#                                  under /usr/local, user node with uid 1000): Containerfile's NODE_IMAGE
#   deploy/stand-in-base.sh nats   Debian bookworm with Debian's nats-server as entrypoint (compose)
# Cached: the root file systems under .cache/stand-in/, the images in podman's storage; a second
# run that finds the image only prints its name. Needs root, podman and mmdebstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: deploy/stand-in-base.sh node|nats}
NODE_VERSION=${STAND_IN_NODE_VERSION:-24.22.3}
NPM_VERSION=${STAND_IN_NPM_VERSION:-11.21.3}
SUITE=bookworm
cache="$PWD/.cache/stand-in"
mkdir -p "$cache"
case "$kind" in
  node) image="localhost/stand-in/node:$NODE_VERSION-$SUITE-slim" ;;
  nats) image="localhost/stand-in/nats:$SUITE" ;;
  *) echo "stand-in-base: unknown kind $kind (node or nats)" >&2; exit 2 ;;
esac
if podman image exists "$image"; then echo "$image"; exit 0; fi

# The host's own Debian sources when it is a Debian host (its mirror is the one it can reach),
# else mmdebstrap's default. Release files of a snapshot mirror have expired: apt still checks
# their signatures, not their dates.
mirror=()
[ -f /etc/apt/sources.list.d/debian.sources ] && grep -q "$SUITE" /etc/apt/sources.list.d/debian.sources &&
  mirror=(/etc/apt/sources.list.d/debian.sources)
debstrap() {
  mmdebstrap --quiet --format=tar --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' "$@" </dev/null
}

tar="$cache/${image##*/}.tar"
tar=${tar//:/-}
changes=()
if [ "$kind" = node ]; then
  nodebin="$(.ci/node-runtime "$NODE_VERSION")/node"
  npmdir="$cache/npm-$NPM_VERSION"
  if [ ! -f "$npmdir/node_modules/npm/bin/npm-cli.js" ]; then
    npm install --no-save --no-audit --no-fund --no-package-lock --prefix "$npmdir" "npm@$NPM_VERSION" >&2
  fi
  hooks=(
    --customize-hook="cp '$nodebin' \"\$1/usr/local/bin/node\""
    --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules\" && cp -a '$npmdir/node_modules/npm' \"\$1/usr/local/lib/node_modules/\""
    --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm" && ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"'
    --customize-hook='chroot "$1" groupadd --gid 1000 node && chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
  )
  # A machine whose registry traffic passes a proxy with its own authority trusts it through
  # NODE_EXTRA_CA_CERTS; the stand-in carries it as a company's base image would.
  if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r "$NODE_EXTRA_CA_CERTS" ]; then
    hooks+=(--customize-hook="mkdir -p \"\$1/usr/local/share/stand-in\" && cp '$NODE_EXTRA_CA_CERTS' \"\$1/usr/local/share/stand-in/extra-ca.pem\"")
    changes+=(--change 'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/stand-in/extra-ca.pem')
  fi
  [ -f "$tar" ] || debstrap --include=ca-certificates "${hooks[@]}" "$SUITE" "$tar.part" "${mirror[@]}" >&2
  changes+=(--change "ENV NODE_VERSION=$NODE_VERSION" --change 'CMD ["node"]')
else
  [ -f "$tar" ] || debstrap --include=nats-server "$SUITE" "$tar.part" "${mirror[@]}" >&2
  changes+=(--change 'ENTRYPOINT ["/usr/sbin/nats-server"]')
fi
[ -f "$tar" ] || mv "$tar.part" "$tar"
podman import --quiet "${changes[@]}" "$tar" "$image" >/dev/null
echo "$image"
