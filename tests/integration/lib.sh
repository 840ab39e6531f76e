# Shared helpers for the integration tests. Sourced by each test, which runs
# inside scripts/lib/cachet-env (CACHET_SIM_DIR, CACHET_SIM_PKI, CACHET_CARD_PIN,
# OPENSC_PKCS11 and PATH with our tools are set).
set -euo pipefail

work=$(mktemp -d "$CACHET_SIM_DIR/test.XXXXXX")

fail() { echo "ÉCHEC: $*" >&2; exit 1; }
step() { echo "-- $*"; }
skip() { echo "SKIPPED: $*"; exit 77; }

# expect_match TEXT REGEX WHAT
expect_match() {
  grep -Eq -- "$2" <<<"$1" || { printf '%s\n' "$1" >&2; fail "$3: /$2/ absent"; }
}
expect_no_match() {
  if grep -Eq -- "$2" <<<"$1"; then printf '%s\n' "$1" >&2; fail "$3: /$2/ présent"; fi
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# poll MS CMD...: runs CMD until it succeeds, at most MS milliseconds.
poll() {
  local ms=$1; shift
  local end=$(( $(now_ms) + ms ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -lt $end ] || return 1
    sleep 0.01
  done
}

# The profile directory of the card in the slot.
profile_dir() { echo "$CACHET_SIM_PKI/profiles/${1:-$CACHET_CARD_PROFILE}"; }

# DigestInfo(SHA-256) of a file, as raw bytes into $2 (PKCS#1 v1.5, RFC 8017 §9.2).
digestinfo_sha256() {
  { printf '\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20'
    openssl dgst -sha256 -binary "$1"; } > "$2"
}

# The first object ID of a given kind and label pattern, as pkcs11-tool prints it.
p11_id_of() {
  local type=$1 label=$2
  pkcs11-tool --module "$OPENSC_PKCS11" -O --type "$type" 2>/dev/null |
    awk -v l="$label" '/Object;/ {hit = 0} /label:/ {hit = ($0 ~ l)} hit && /ID:/ {print $2; exit}'
}
