#!/usr/bin/env bash
# libcachet-pkcs11 with OpenSSL through the libp11 engine (unmodified tools):
# - openssl cms -sign with the signature key verifies (openssl cms -verify);
# - openssl s_client -tls1_2 authenticates with the authentication key to a
#   loopback openssl s_server -Verify 1 -CAfile roots.pem; -tls1_3 fails:
#   TLS 1.3 signs with RSA-PSS only (RFC 8446 §4.2.3), which a CPS3 cannot do
#   (docs/pkcs11.md). GnuTLS: gnutls.sh.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/p11lib.sh"
engine=$(ls /usr/lib/*/engines-3/pkcs11.so 2>/dev/null | head -n1)
[ -n "$engine" ] || skip "libp11's engine missing (Debian package libengine-pkcs11-openssl)"
auto_confirm_start
pdir=$(profile_dir)
roots=$CACHET_SIM_PKI/roots.pem
tok=$(uri_enc "$(token_label)")
auth_id=$(hex_uri "$(key_id CPS_PRIV_AUT)")
sign_id=$(hex_uri "$(key_id CPS_PRIV_SIG)")
[ -n "$auth_id" ] && [ -n "$sign_id" ] || fail "key IDs"
cat > "$work/openssl.cnf" <<CONF
# libp11's engine on libcachet-pkcs11 (docs/pkcs11.md)
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $engine
MODULE_PATH = $CACHET_PKCS11
init = 0
CONF
ossl() { OPENSSL_CONF="$work/openssl.cnf" p11run openssl "$@"; }
# The certificates as the token holds them (auth, sign, and the issuing CA).
cert_pem "authentification" "$work/auth.pem"
cert_pem "signature" "$work/sign.pem"
cert_pem "AC" "$work/ca.pem"
cmp -s "$work/auth.pem.der" "$pdir/auth.crt.der" || fail "auth certificate differs from the profile's"
# On this PIN pad reader libp11 and GnuTLS log in with a NULL PIN: verified once.
verify_pin_once

step "openssl cms -sign (libp11 engine, signature key), openssl cms -verify"
printf 'Ordonnance\r\n' > "$work/msg"
out=$(ossl cms -sign -engine pkcs11 -keyform engine \
  -inkey "pkcs11:token=$tok;id=$sign_id;type=private" -signer "$work/sign.pem" \
  -certfile "$work/ca.pem" -md sha256 -binary -nodetach -outform DER \
  -in "$work/msg" -out "$work/msg.p7" 2>&1) || fail "openssl cms -sign: $out"
openssl cms -verify -inform DER -in "$work/msg.p7" -CAfile "$roots" -binary \
  -out "$work/content" 2>"$work/v.err" || fail "openssl cms -verify: $(cat "$work/v.err")"
cmp -s "$work/msg" "$work/content" || fail "content differs"

step "openssl s_client -tls1_2 with the authentication key"
tls_server s12 "$roots"
ossl s_client -connect "127.0.0.1:$port" -tls1_2 -client_sigalgs RSA+SHA256 \
  -engine pkcs11 -keyform engine -key "pkcs11:token=$tok;id=$auth_id;type=private" \
  -cert "$work/auth.pem" -cert_chain "$work/ca.pem" <<<$'GET / HTTP/1.0\r\n' \
  > "$work/s12.cli" 2>&1 || true
tls_server_done s12 || fail "TLS 1.2 client authentication: $(cat "$work/s12.cli" "$work/s12.srv")"
expect_match "$(cat "$work/s12.cli")" "Protocol *: TLSv1.2" "TLS 1.2"

step "openssl s_client -tls1_3: fails (no RSA-PSS on a CPS3)"
tls_server s13 "$roots"
ossl s_client -connect "127.0.0.1:$port" -tls1_3 \
  -engine pkcs11 -keyform engine -key "pkcs11:token=$tok;id=$auth_id;type=private" \
  -cert "$work/auth.pem" -cert_chain "$work/ca.pem" <<<$'GET / HTTP/1.0\r\n' \
  > "$work/s13.cli" 2>&1 || true
if tls_server_done s13; then fail "TLS 1.3 client authentication succeeded"; fi
expect_match "$(cat "$work/s13.cli")" "[Mm]echanism invalid|did not return a certificate|alert" \
  "TLS 1.3 failure"

echo "OK"
