#!/usr/bin/env bash
# OpenSC signs with the authentication key (MSE SET AT + INTERNAL AUTHENTICATE,
# card-side PKCS#1 v1.5) over a SHA-256 DigestInfo; the signature verifies with
# the authentication certificate read from the card, which chains to roots.pem.
. "$(dirname "$0")/lib.sh"
pdir=$(profile_dir)

id=$(p11_id_of cert "Certificat d'authentification CPS")
[ -n "$id" ] || fail "authentication certificate not found"
pkcs15-tool --read-certificate "$id" > "$work/auth.pem"
openssl verify -CAfile "$CACHET_SIM_PKI/roots.pem" -untrusted "$pdir/ca.crt.pem" "$work/auth.pem" >/dev/null ||
  fail "authentication certificate does not chain to roots.pem"
openssl x509 -in "$work/auth.pem" -noout -pubkey > "$work/auth.pub"

printf 'Bonjour, ceci est un test de connexion MSSanté.\n' > "$work/msg"
digestinfo_sha256 "$work/msg" "$work/di"

step "pkcs11-tool --sign -m RSA-PKCS with the authentication key"
pkcs11-tool --module "$OPENSC_PKCS11" --login --pin "$CACHET_CARD_PIN" --sign -m RSA-PKCS \
  --id "$id" -i "$work/di" -o "$work/sig" 2> "$work/err" || { cat "$work/err" >&2; fail "signature"; }
[ "$(stat -c %s "$work/sig")" = 256 ] || fail "signature is not 256 bytes"

step "openssl dgst -sha256 -verify accepts it"
openssl dgst -sha256 -verify "$work/auth.pub" -signature "$work/sig" "$work/msg" >/dev/null ||
  fail "signature does not verify"

step "a different message does not verify"
printf 'autre\n' > "$work/other"
if openssl dgst -sha256 -verify "$work/auth.pub" -signature "$work/sig" "$work/other" >/dev/null 2>&1; then
  fail "signature verified over another message"
fi
echo "OK"
