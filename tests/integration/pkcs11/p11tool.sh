#!/usr/bin/env bash
# libcachet-pkcs11 with GnuTLS's p11tool (unmodified): --list-all, and
# --test-sign with both keys (the first login typed on the appliance's PIN pad
# when it has one).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/p11lib.sh"
command -v p11tool >/dev/null || skip "p11tool missing (Debian package gnutls-bin)"
skip_gnutls_in_asan
auto_confirm_start
token=$(token_label)
tok=$(uri_enc "$token")
t=(p11run p11tool --provider "$CACHET_PKCS11")

step "p11tool --list-tokens, --list-all"
out=$("${t[@]}" --list-tokens 2>&1) || fail "--list-tokens: $out"
expect_match "$out" "Label: $token" "token"
out=$("${t[@]}" --list-all "pkcs11:token=$tok" 2>&1) || fail "--list-all: $out"
[ "$(grep -c 'Type: X.509 Certificate (RSA-2048)' <<<"$out")" = 3 ] || fail "3 certificates: $out"
[ "$(grep -c 'Type: Public key (RSA-2048)' <<<"$out")" = 2 ] || fail "2 public keys: $out"
expect_match "$out" "object=CPS_PRIV_AUT;type=public" "auth public key"
expect_match "$out" "CKA_CERTIFICATE_CATEGORY=CA" "CA certificate"

step "p11tool --test-sign, authentication key"
url="pkcs11:token=$tok;object=CPS_PRIV_AUT;type=private"
export GNUTLS_PIN=$CACHET_CARD_PIN
if has_pinpad; then
  ( r=0; p11run p11tool --provider "$CACHET_PKCS11" --login --test-sign "$url" > "$work/ts.out" 2>&1 ||
      r=$?; echo $r > "$work/ts.rc" ) &
  bg=$!
  type_pin_when_asked
  wait $bg || true
else
  r=0; "${t[@]}" --login --test-sign "$url" > "$work/ts.out" 2>&1 || r=$?; echo $r > "$work/ts.rc"
fi
[ "$(cat "$work/ts.rc")" = 0 ] || fail "--test-sign auth: $(cat "$work/ts.out")"
expect_match "$(cat "$work/ts.out")" "Verifying against public key in the token\.\.\. ok" "auth"

step "p11tool --test-sign, signature key (card already verified: no prompt)"
out=$("${t[@]}" --login --test-sign "pkcs11:token=$tok;object=CPS_PRIV_SIG;type=private" 2>&1) ||
  fail "--test-sign sign: $out"
expect_match "$out" "Verifying against public key in the token\.\.\. ok" "sign"
out=$("${t[@]}" --login --list-all-privkeys "pkcs11:token=$tok" 2>&1) || fail "privkeys: $out"
[ "$(grep -c 'Type: Private key (RSA-2048)' <<<"$out")" = 2 ] || fail "2 private keys: $out"

echo "OK"
