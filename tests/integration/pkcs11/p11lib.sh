# Helpers for the libcachet-pkcs11 integration tests (sourced after ../lib.sh,
# inside scripts/lib/cachet-env: CACHET_PKCS11 is the module, cachetd runs).

[ -f "${CACHET_PKCS11:-}" ] || fail "CACHET_PKCS11 is not set or missing (build cachet_pkcs11)"
[ -S "${CACHETD_SOCKET:-/nonexistent}" ] || fail "cachetd is not running in the environment"

# In the sanitizer build the module needs the ASan runtime in the (plain)
# programs that load it; their own leaks are not ours to report.
p11run() {
  if [ "${CACHET_BUILD_KIND:-}" = asan ] && [ -n "${CACHET_PCSCD_PRELOAD:-}" ]; then
    env LD_PRELOAD="$CACHET_PCSCD_PRELOAD" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 "$@"
  else
    "$@"
  fi
}

# Background helpers of the test, stopped when it ends.
bg_pids=()
bg_add() { bg_pids+=("$1"); trap 'for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT; }

# GnuTLS's tools (p11tool, gnutls-cli) hang when the ASan runtime is preloaded
# into them, whatever the module (OpenSC's too): in the sanitizer build the
# tests that need them are reported skipped.
skip_gnutls_in_asan() {
  if [ "${CACHET_BUILD_KIND:-}" = asan ]; then
    skip "GnuTLS tools cannot run with the ASan runtime preloaded (the normal build runs this test)"
  fi
}

# The appliance may ask the holder to confirm a signature with the signature
# key (issue 5's gate): a helper in the background reads the screen and
# presses OK whenever it shows the confirmation, until the test ends.
auto_confirm_start() {
  (
    while :; do
      case "$(cachet-sim-ctl screen --json 2>/dev/null)" in
        *'"confirm-signature"'*) cachet-sim-ctl key ok >/dev/null 2>&1 || true ;;
      esac
      sleep 0.05
    done
  ) >/dev/null 2>&1 </dev/null &
  bg_add $!
}

# A pkcs11: URI attribute value (RFC 7512 §2.3: percent-encoding).
uri_enc() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n' | sed 's/../%&/g'; }

# The token's label, as pkcs11-tool shows it.
token_label() {
  p11run pkcs11-tool --module "$CACHET_PKCS11" -L 2>/dev/null |
    sed -n 's/^ *token label *: *//p' | head -n1 | sed 's/ *$//'
}

# A certificate of the token in PEM: cert_pem LABEL-PATTERN OUT.
cert_pem() {
  local id
  id=$(p11run pkcs11-tool --module "$CACHET_PKCS11" -O --type cert 2>/dev/null |
       awk -v l="$1" '/Object;/ {hit = 0} /label:/ {hit = ($0 ~ l)} hit && /ID:/ {print $2; exit}')
  [ -n "$id" ] || fail "no certificate /$1/ on the token"
  p11run pkcs11-tool --module "$CACHET_PKCS11" --read-object --type cert --id "$id" \
    -o "$2.der" >/dev/null 2>&1 || fail "read certificate /$1/"
  openssl x509 -inform DER -in "$2.der" -out "$2"
}

# p11-kit (p11-kit-proxy.so, GnuTLS) loads the modules its configuration
# lists. Inside the environment's private mount namespace the test replaces
# the system's module directories with its own, holding only
# drivers/pkcs11/cachet-pkcs11.module as shipped (its relative "module:" path
# is resolved in p11-kit's module directory, where a link to the built module
# goes). Nothing changes outside the namespace; user configuration is not an
# option (p11-kit ignores it for root, which the environment is).
p11kit_only_cachet() {
  local conf=$work/p11-kit-modules lib=$work/p11-kit-lib
  mkdir -p "$conf" "$lib"
  cp "$(dirname "${BASH_SOURCE[0]}")/../../../drivers/pkcs11/cachet-pkcs11.module" "$conf/"
  ln -sf "$CACHET_PKCS11" "$lib/libcachet-pkcs11.so"
  local confdir libdir
  confdir=$(pkg-config --variable p11_module_configs p11-kit-1 2>/dev/null || true)
  libdir=$(pkg-config --variable p11_module_path p11-kit-1 2>/dev/null || true)
  [ -d "${confdir:=/usr/share/p11-kit/modules}" ] && [ -d "${libdir:=/usr/lib/x86_64-linux-gnu/pkcs11}" ] ||
    skip "p11-kit's module directories not found"
  mount --bind "$conf" "$confdir" || skip "cannot bind-mount p11-kit's module directory"
  mount --bind "$lib" "$libdir" || skip "cannot bind-mount p11-kit's library directory"
}

# The PIN, verified once through cachetd (as a first client would): later
# logins with a NULL PIN on the PIN pad reader need no typing.
verify_pin_once() {
  cachet --pin-fd 3 verify-pin 3<<<"$CACHET_CARD_PIN" >/dev/null || fail "cachet verify-pin"
}

# type_pin_when_asked: waits (20 s) for the appliance's PIN screen, types the
# PIN and OK.
type_pin_when_asked() {
  poll 20000 sh -c 'cachet-sim-ctl screen --json | grep -q "\"pin-entry\""' ||
    fail "the appliance did not ask for the PIN: $(cachet-sim-ctl screen --json)"
  local k
  for k in $(printf '%s' "$CACHET_CARD_PIN" | sed 's/./& /g') ok; do
    cachet-sim-ctl key "$k" >/dev/null || fail "key $k"
  done
}

# has_pinpad: the token says the PIN is typed on the reader.
has_pinpad() {
  p11run pkcs11-tool --module "$CACHET_PKCS11" -L 2>/dev/null | grep -q "PIN pad present"
}

# A key's CKA_ID as pkcs11-tool prints it (hex), by the label of its public key.
key_id() {
  p11run pkcs11-tool --module "$CACHET_PKCS11" -O --type pubkey 2>/dev/null |
    awk -v l="$1" '/Object;/ {hit = 0} /label:/ {hit = ($0 ~ l)} hit && /ID:/ {print $2; exit}'
}
# Hex → pkcs11: URI percent-encoding.
hex_uri() { sed 's/../%&/g' <<<"$1"; }

# tls_server NAME CAFILE [ARGS...]: a loopback openssl s_server that asks for
# a client certificate (-Verify 1) checked against CAFILE, answers one
# connection (-www) and exits; its output in $work/NAME.srv; sets $port.
tls_server() {
  local name=$1 cafile=$2; shift 2
  [ -f "$work/srv.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/srv.key" \
    -out "$work/srv.pem" -subj /CN=localhost -days 1 >/dev/null 2>&1 || fail "server certificate"
  # stdin stays open (s_server stops at its end) until the test ends (bounded)
  (timeout 300 tail -f /dev/null | openssl s_server -accept 127.0.0.1:0 -naccept 1 -www -cert "$work/srv.pem" \
     -key "$work/srv.key" -Verify 1 -CAfile "$cafile" -verify_return_error "$@" \
     > "$work/$name.srv" 2>&1) >/dev/null 2>&1 </dev/null &
  bg_add $!
  poll 10000 grep -q '^ACCEPT' "$work/$name.srv" || fail "s_server did not start: $(cat "$work/$name.srv")"
  port=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$work/$name.srv")
  [ -n "$port" ] || fail "s_server port: $(cat "$work/$name.srv")"
}
# tls_server_done NAME: waits (10 s) until the server finished its one
# connection; true if the handshake completed, with a client certificate.
tls_server_done() {
  poll 10000 grep -q 'server accepts that finished' "$work/$1.srv" || return 1
  grep -q '^ *1 server accepts that finished' "$work/$1.srv" &&
    grep -q 'CN = [0-9]' "$work/$1.srv"
}
