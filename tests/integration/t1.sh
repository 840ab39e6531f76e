#!/usr/bin/env bash
# A T=1 card with TA1=0x18: the driver asks for PPS, the appliance negotiates
# Fi=372/Di=12 with the card, and OpenSC signs through T=1 (IFSC 32: chaining).
. "$(dirname "$0")/lib.sh"

step "the card runs T=1 after PPS to TA1=0x18"
out=$(pcsc-probe status)
expect_match "$out" "protocol=T1" "active protocol"
out=$(pcsc-probe hold cachet-sim-ctl status)
expect_match "$out" "protocol=T1" "appliance protocol"
expect_match "$out" "fidi=18" "negotiated Fi/Di"

step "OpenSC signs with the authentication key over T=1"
id=$(p11_id_of cert "Certificat d'authentification CPS")
[ -n "$id" ] || fail "authentication certificate not found"
pkcs15-tool --read-certificate "$id" > "$work/auth.pem"
openssl x509 -in "$work/auth.pem" -noout -pubkey > "$work/auth.pub"
printf 'T=1\n' > "$work/msg"
digestinfo_sha256 "$work/msg" "$work/di"
pkcs11-tool --module "$OPENSC_PKCS11" --login --pin "$CACHET_CARD_PIN" --sign -m RSA-PKCS \
  --id "$id" -i "$work/di" -o "$work/sig" 2> "$work/err" || { cat "$work/err" >&2; fail "signature"; }
openssl dgst -sha256 -verify "$work/auth.pub" -signature "$work/sig" "$work/msg" >/dev/null ||
  fail "signature does not verify"
echo "OK"
