#!/usr/bin/env bash
# Unmodified OpenSC sees the Cachet reader, recognises the virtual CPS3 as a CPx
# (IAS-ECC) card and lists its keys and certificates with the holder's identity.
. "$(dirname "$0")/lib.sh"
pdir=$(profile_dir)

step "opensc-tool -l lists the Cachet reader"
out=$(opensc-tool -l)
expect_match "$out" "Cachet CPS Appliance" "opensc-tool -l"

step "opensc-tool -n names the card IAS-ECC"
out=$(opensc-tool -n)
expect_match "$out" "^IAS-ECC$" "opensc-tool -n"

step "opensc-tool -a returns the profile's ATR"
atr=$(sed -n 's/^atr *= *//p' "$pdir/profile.conf" | tr -d ' :' | tr a-f A-F)
out=$(opensc-tool -a | tr -d ' :' | tr a-f A-F)
expect_match "$out" "$atr" "ATR"

step "pkcs15-tool -D shows both private keys and the certificates"
out=$(pkcs15-tool -D)
expect_match "$out" "Private RSA Key \[CPS_PRIV_SIG\]" "signature key"
expect_match "$out" "Private RSA Key \[CPS_PRIV_AUT\]" "authentication key"
sig=$(awk '/Private RSA Key \[CPS_PRIV_SIG\]/ {h=1} h && /Key ref/ {print; exit}' <<<"$out")
aut=$(awk '/Private RSA Key \[CPS_PRIV_AUT\]/ {h=1} h && /Key ref/ {print; exit}' <<<"$out")
expect_match "$sig" "129 \(0x81\)" "signature key reference"
expect_match "$aut" "130 \(0x82\)" "authentication key reference"
expect_match "$out" "X.509 Certificate \[Certificat d'authentification CPS\]" "auth certificate"
expect_match "$out" "X.509 Certificate \[Certificat de signature CPS\]" "signature certificate"

step "the certificates read from the card carry the holder and chain to roots.pem"
holder_idnat=$(sed -n 's/^idnat *= *//p' "$pdir/profile.conf")
for label in "Certificat d'authentification CPS" "Certificat de signature CPS"; do
  id=$(p11_id_of cert "$label")
  [ -n "$id" ] || fail "no ID for $label"
  pkcs15-tool --read-certificate "$id" > "$work/cert.pem"
  subj=$(openssl x509 -in "$work/cert.pem" -noout -subject -nameopt RFC2253,-esc_msb)
  expect_match "$subj" "CN=$holder_idnat" "subject of $label"
  openssl verify -CAfile "$CACHET_SIM_PKI/roots.pem" -untrusted "$pdir/ca.crt.pem" "$work/cert.pem" >/dev/null ||
    fail "$label does not chain to roots.pem"
done

step "pkcs11-tool lists the token objects"
out=$(pkcs11-tool --module "$OPENSC_PKCS11" -O)
expect_match "$out" "Certificate Object" "pkcs11-tool -O"
echo "OK"
