#!/usr/bin/env bash
# The signature key (0x81, non-repudiation) behaves as on a real CPS3 with the
# Debian OpenSC: OpenSC cannot sign with it (spec/cpx-card.md part A item 3).
# Our own PC/SC program signs with it the way a real CPS3 is driven:
# VERIFY, MSE SET DST (key 0x81, algRef 42), PSO COMPUTE DIGITAL SIGNATURE over
# the SHA-256 hash; the signature verifies against the signature certificate.
# The appliance's gate holds the signature until the holder confirms it on the
# appliance (firmware/gate): the test reads the screen, then presses OK.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gate_lib.sh"
pdir=$(profile_dir)

id=$(p11_id_of cert "Certificat de signature CPS")
[ -n "$id" ] || fail "signature certificate not found"
pkcs15-tool --read-certificate "$id" > "$work/sign.pem"
openssl x509 -in "$work/sign.pem" -noout -pubkey > "$work/sign.pub"
printf 'Compte rendu de consultation\n' > "$work/msg"
digestinfo_sha256 "$work/msg" "$work/di"

step "OpenSC cannot sign with the signature key (RSA-PKCS nor SHA256-RSA-PKCS)"
for mech in RSA-PKCS SHA256-RSA-PKCS; do
  in="$work/di"; [ $mech = RSA-PKCS ] || in="$work/msg"
  if pkcs11-tool --module "$OPENSC_PKCS11" --login --pin "$CACHET_CARD_PIN" --sign -m $mech \
       --id "$id" -i "$in" -o "$work/sig-opensc" >"$work/out" 2>&1; then
    fail "OpenSC signed with the signature key using $mech"
  fi
  expect_no_match "$(cat "$work/out")" "CKR_PIN_(INCORRECT|LOCKED)" "$mech must not cost a PIN try"
done

step "PC/SC: VERIFY + MSE SET DST + PSO CDS over SHA-256"
pin_hex=$(printf '%s' "$CACHET_CARD_PIN" | od -An -tx1 | tr -d ' \n')
hash=$(openssl dgst -sha256 -binary "$work/msg" | od -An -tx1 | tr -d ' \n')
pcsc-probe apdu \
  "0020000104$pin_hex" \
  "00A40904043F000001 00" \
  "002241B6068401818001 42" \
  "002A9E9A20${hash}00" > "$work/sign.out" &
signer=$!
confirm_with ok
wait $signer || fail "pcsc-probe failed"
out=$(cat "$work/sign.out")
lines=$(wc -l <<<"$out")
[ "$lines" = 4 ] || fail "expected 4 answers, got: $out"
sed -n 1p <<<"$out" | grep -q '^9000$' || fail "VERIFY: $(sed -n 1p <<<"$out")"
sed -n 3p <<<"$out" | grep -q '^9000$' || fail "MSE SET DST: $(sed -n 3p <<<"$out")"
last=$(sed -n 4p <<<"$out")
[ "${last##* }" = 9000 ] || fail "PSO CDS: $last"
sig=${last%% *}
[ ${#sig} = 512 ] || fail "signature is not 256 bytes"
xxd -r -p <<<"$sig" > "$work/sig"

step "the signature verifies with the signature certificate"
openssl dgst -sha256 -verify "$work/sign.pub" -signature "$work/sig" "$work/msg" >/dev/null ||
  fail "signature does not verify"
echo "OK"
