#!/usr/bin/env bash
# libcachet-pkcs11 in NSS (Firefox's and Thunderbird's library), with NSS's own
# tools (unmodified): modutil -add, certutil -L -h TOKEN lists the card's
# certificates, cmsutil -S signs with the signature key, and the CMS verifies
# with openssl cms -verify against the test PKI's roots (the CA certificate
# the chain needs comes from the token); tstclnt authenticates with the
# authentication key to a loopback openssl s_server in TLS 1.2, not in 1.3. The PIN is verified once through
# cachetd first: on this PIN pad reader NSS logs in with a NULL PIN.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/p11lib.sh"
for t in modutil certutil cmsutil; do
  command -v $t >/dev/null || skip "$t missing (Debian package libnss3-tools)"
done
auto_confirm_start
token=$(token_label)
db=sql:$work/nss
mkdir "$work/nss"
printf '%s\n' "$CACHET_CARD_PIN" > "$work/pw"

step "modutil -add"
certutil -N -d "$db" --empty-password || fail "certutil -N"
out=$(p11run modutil -dbdir "$db" -add cachet -libfile "$CACHET_PKCS11" -force 2>&1) ||
  fail "modutil -add: $out"
out=$(p11run modutil -dbdir "$db" -list cachet 2>&1) || fail "modutil -list: $out"
expect_match "$out" "Token Name: $token" "token in NSS"

step "certutil -L -h '$token'"
verify_pin_once
out=$(p11run certutil -d "$db" -L -h "$token" -f "$work/pw" 2>&1) || fail "certutil -L: $out"
expect_match "$out" "$token:Certificat d'authentification CPS +u,u,u" "auth certificate with its key"
expect_match "$out" "$token:Certificat de signature CPS +u,u,u" "sign certificate with its key"
expect_match "$out" "$token:Certificat AC CPS" "CA certificate"

step "cmsutil -S with the signature key, openssl cms -verify"
printf 'Compte rendu de consultation\r\n' > "$work/msg"
out=$(p11run cmsutil -S -d "$db" -N "$token:Certificat de signature CPS" -G -P -Y NONE \
  -i "$work/msg" -o "$work/msg.p7" -f "$work/pw" 2>&1) || fail "cmsutil -S: $out"
openssl cms -verify -inform DER -in "$work/msg.p7" -CAfile "$CACHET_SIM_PKI/roots.pem" \
  -out "$work/content" 2>"$work/verify.err" || fail "openssl cms -verify: $(cat "$work/verify.err")"
cmp -s "$work/msg" "$work/content" || fail "content differs"
expect_match "$(cat "$work/verify.err")" "Verification successful" "openssl cms -verify"
signer=$(openssl cms -cmsout -print -inform DER -in "$work/msg.p7" | grep -c "CN=TEST AC IGC-SANTE ELEMENTAIRE PERSONNES" || true)
[ "$signer" -ge 1 ] || fail "the CMS does not name the card's CA"
step "NSS TLS client authentication (tstclnt): TLS 1.2 works, TLS 1.3 does not"
# NSS sees that the token has no RSA-PSS: in TLS 1.2 it signs with PKCS#1
# v1.5; in TLS 1.3 (PSS only, RFC 8446 §4.2.3) it sends no certificate.
if command -v tstclnt >/dev/null; then
  for v in 1.2 1.3; do
    tls_server n$v "$CACHET_SIM_PKI/roots.pem"
    p11run timeout 60 tstclnt -h 127.0.0.1 -p "$port" -d "$db" -W "$work/pw" -o -Q \
      -n "$token:Certificat d'authentification CPS" -V "tls$v:tls$v" </dev/null \
      > "$work/n$v.cli" 2>&1 || true
    if [ $v = 1.2 ]; then
      tls_server_done n1.2 || fail "NSS TLS 1.2: $(cat "$work/n1.2.cli" "$work/n1.2.srv")"
    elif tls_server_done n1.3; then
      fail "NSS TLS 1.3 client authentication succeeded"
    fi
  done
fi
echo "OK"
