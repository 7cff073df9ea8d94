#!/usr/bin/env bash
# podman as Debian 12's podman-compose (1.0.3) should call it: beside `network_mode: host` that
# version also passes the project's network (--net NAME --network-alias SERVICE), which podman
# refuses ("cannot set multiple networks without bridge network mode"). compose-demo.sh hands
# this wrapper to podman-compose (--podman-path); with host networking it drops those two.
args=("$@")
if [ "${1:-}" = run ] || [ "${1:-}" = create ]; then
  host=0
  for ((i = 0; i < ${#args[@]} - 1; i++)); do
    [ "${args[i]}" = --network ] && [ "${args[i + 1]}" = host ] && host=1
  done
  if [ "$host" = 1 ]; then
    kept=()
    for ((i = 0; i < ${#args[@]}; i++)); do
      case "${args[i]}" in
        --net | --network-alias) i=$((i + 1)) ;;
        *) kept+=("${args[i]}") ;;
      esac
    done
    args=("${kept[@]}")
  fi
fi
exec podman "${args[@]}"
