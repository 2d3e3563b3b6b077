#!/bin/bash
# A rate-limited link between two network namespaces, for the limited-link tests and kvtier-bench's
# wan/ rows:  NAME-s (the server side, 10.77.0.1) <-veth-> NAME-c (the client side, 10.77.0.2).
#
#   wan_link.sh up NAME RATE_MBIT [DELAY_MS]   RATE_MBIT 0: unshaped; DELAY_MS needs netem
#   wan_link.sh down NAME
#
# Both veth ends are created inside their namespaces, so parallel links with distinct NAMEs never
# collide (same addresses, different namespaces). `up` shapes both directions with tbf (egress of
# each end) and prints one line "link NAME rate_mbit=R delay_ms=D netem=yes|no|unused". netem is
# missing from some kernels (these machines have tbf and htb only): the delay is then not applied
# and the line says so. `up` also removes links left by processes that died (NAME kvw-PID-N with no
# process PID). Exit 77: namespaces cannot be made here (not root, no ip/tc, no netns support).
set -u
cmd=${1:-}; name=${2:-}
[[ -n "$cmd" && -n "$name" ]] || { echo "usage: $0 up NAME RATE_MBIT [DELAY_MS] | down NAME" >&2; exit 2; }
[[ "$name" =~ ^[A-Za-z0-9_-]{1,40}$ ]] || { echo "bad link name '$name'" >&2; exit 2; }

down() {
  ip netns del "$1-s" 2>/dev/null
  ip netns del "$1-c" 2>/dev/null
  return 0
}

if [[ "$cmd" == down ]]; then down "$name"; exit 0; fi
[[ "$cmd" == up ]] || { echo "unknown command $cmd" >&2; exit 2; }
rate=${3:-0}; delay=${4:-0}
[[ "$rate" =~ ^[0-9]+$ && "$delay" =~ ^[0-9]+$ ]] || { echo "bad rate/delay" >&2; exit 2; }

if [[ $(id -u) != 0 ]]; then echo "skip: network namespaces need root" >&2; exit 77; fi
command -v ip >/dev/null && command -v tc >/dev/null || { echo "skip: ip/tc not installed" >&2; exit 77; }

# Links of dead processes (a crashed test cannot run its destructor).
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^kvw-[0-9]+-[0-9]+-[sc]$'); do
  pid=$(echo "$ns" | cut -d- -f2)
  kill -0 "$pid" 2>/dev/null || ip netns del "$ns" 2>/dev/null
done

fail() { echo "$1" >&2; down "$name"; exit "${2:-1}"; }
ip netns add "$name-s" 2>/dev/null || fail "skip: cannot create network namespace $name-s" 77
ip netns add "$name-c" 2>/dev/null || fail "skip: cannot create network namespace $name-c" 77
ip link add veth0 netns "$name-s" type veth peer name veth1 netns "$name-c" ||
  fail "skip: cannot create a veth pair" 77
ip -n "$name-s" addr add 10.77.0.1/24 dev veth0 || fail "addr s"
ip -n "$name-c" addr add 10.77.0.2/24 dev veth1 || fail "addr c"
for side in s c; do
  ip -n "$name-$side" link set lo up || fail "lo up"
done
ip -n "$name-s" link set veth0 up || fail "veth0 up"
ip -n "$name-c" link set veth1 up || fail "veth1 up"

netem=unused
if (( delay > 0 )); then netem=no; fi
shape() {  # ns dev
  local parent="root"
  if (( delay > 0 )); then
    if tc -n "$1" qdisc add dev "$2" root handle 1: netem delay "${delay}ms" limit 100000 2>/dev/null; then
      netem=yes; parent="parent 1:"
    fi
  fi
  if (( rate > 0 )); then
    # burst: at least 1 MiB (veth sends 64 KiB GSO packets) and 2 ms of the rate; the latency
    # bounds the queue the way a switch buffer would.
    local burst=$(( rate * 1000000 / 8 / 500 )); (( burst < 1048576 )) && burst=1048576
    tc -n "$1" qdisc add dev "$2" $parent handle 2: tbf rate "${rate}mbit" burst "$burst" latency 20ms ||
      fail "skip: tc tbf unavailable" 77
  fi
}
shape "$name-s" veth0
shape "$name-c" veth1
echo "link $name rate_mbit=$rate delay_ms=$delay netem=$netem"
