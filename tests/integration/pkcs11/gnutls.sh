#!/usr/bin/env bash
# The shipped p11-kit module file (drivers/pkcs11/cachet-pkcs11.module) and
# GnuTLS, with unmodified tools:
# - p11-kit list-modules shows the module and its token; pkcs11-tool on
#   p11-kit-proxy.so sees the token;
# - gnutls-cli (which takes its modules from p11-kit) authenticates with
#   pkcs11: URIs for the certificate and the key to a loopback openssl s_server
#   -Verify 1 in TLS 1.2; in TLS 1.3 it sends no certificate (RSA-PSS only,
#   RFC 8446 §4.2.3: a CPS3 cannot; docs/pkcs11.md) and the server refuses.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/p11lib.sh"
command -v p11-kit >/dev/null || skip "p11-kit missing (Debian package p11-kit)"
command -v gnutls-cli >/dev/null || skip "gnutls-cli missing (Debian package gnutls-bin)"
skip_gnutls_in_asan
auto_confirm_start
token=$(token_label)
tok=$(uri_enc "$token")
auth_id=$(hex_uri "$(key_id CPS_PRIV_AUT)")
[ -n "$auth_id" ] || fail "auth key ID"

step "the p11-kit module file: p11-kit list-modules, p11-kit-proxy.so"
p11kit_only_cachet
out=$(p11run p11-kit list-modules 2>&1) || fail "p11-kit list-modules: $out"
expect_match "$out" "^cachet-pkcs11: libcachet-pkcs11.so" "module listed"
expect_match "$out" "token: $token" "token through p11-kit"
proxy=$(ls /usr/lib/*/p11-kit-proxy.so 2>/dev/null | head -n1)
if [ -n "$proxy" ]; then
  out=$(p11run pkcs11-tool --module "$proxy" -L 2>&1) || fail "p11-kit-proxy: $out"
  expect_match "$out" "token label +: $token" "token through p11-kit-proxy"
fi

step "gnutls-cli with pkcs11: URIs: TLS 1.2 works, TLS 1.3 does not"
# On this PIN pad reader GnuTLS logs in with a NULL PIN: verified once.
verify_pin_once
# gnutls-cli sends the certificate alone: the server knows the intermediate CAs.
cat "$CACHET_SIM_PKI/roots.pem" "$CACHET_SIM_PKI/intermediates.pem" > "$work/server-cas.pem"
for v in 12 13; do
  prio=NORMAL:-VERS-TLS1.3; [ $v = 13 ] && prio=NORMAL:-VERS-ALL:+VERS-TLS1.3
  tls_server g$v "$work/server-cas.pem"
  printf 'GET / HTTP/1.0\r\n\r\n' | p11run timeout 60 gnutls-cli -p "$port" 127.0.0.1 \
    --x509certfile "pkcs11:token=$tok;id=$auth_id;type=cert" \
    --x509keyfile "pkcs11:token=$tok;id=$auth_id;type=private" \
    --priority "$prio" --x509cafile "$work/srv.pem" --verify-hostname localhost \
    > "$work/g$v.cli" 2>&1 || true
  if [ $v = 12 ]; then
    tls_server_done g12 || fail "gnutls-cli TLS 1.2: $(cat "$work/g12.cli" "$work/g12.srv")"
    expect_match "$(cat "$work/g12.cli")" "Handshake was completed" "gnutls-cli TLS 1.2"
    expect_match "$(cat "$work/g12.cli")" "RSA-SHA256" "PKCS#1 v1.5 signature in TLS 1.2"
  elif tls_server_done g13; then
    fail "gnutls-cli TLS 1.3 client authentication succeeded"
  fi
done
echo "OK"
