#!/usr/bin/env bash
# The signature firewall (firmware/gate) end to end, with the vendor commands
# (CCID Escape through SCardControl) of docs/appliance.md:
#  - announce + PSO CDS on the announced hash: the confirm screen shows the
#    summary, OK → the card signs, the signature verifies with the signature
#    certificate, and the receipt verifies with the device key (openssl);
#    a tampered receipt does not;
#  - after an announcement, PSO CDS on another hash → 69 85, the card never
#    sees a PSO CDS;
#  - Cancel → 64 01 in the client, nothing signed;
#  - an unannounced PSO CDS → "unannounced" screen with its fingerprint, OK → signed;
#  - malformed announcements and unknown vendor commands are refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gate_lib.sh"
command -v jq >/dev/null || skip "jq missing"

id=$(p11_id_of cert "Certificat de signature CPS")
[ -n "$id" ] || fail "signature certificate not found"
pkcs15-tool --read-certificate "$id" > "$work/sign.pem"
openssl x509 -in "$work/sign.pem" -noout -pubkey > "$work/sign.pub"
pin_hex=$(printf '%s' "$CACHET_CARD_PIN" | od -An -tx1 | tr -d ' \n')
verify="apdu:0020000104$pin_hex"
mse="apdu:002241B6068401818001 42"
sha256_hex() { openssl dgst -sha256 -binary "$1" | od -An -tx1 | tr -d ' \n'; }

step "device info: a P-256 key made on first boot"
out=$(gate-probe run "info:$work/device.der")
expect_match "$out" "^info 0[0-9A-F] [0-9]+ [0-9]+\.[0-9]+\.[0-9]+$" "GET_DEVICE_INFO"
openssl pkey -pubin -inform DER -in "$work/device.der" -out "$work/device.pem" ||
  fail "the device key is not a SubjectPublicKeyInfo"
expect_match "$(openssl pkey -pubin -in "$work/device.pem" -noout -text)" "prime256v1|P-256" "curve"

step "announce + PSO CDS on the announced hash: summary shown, OK → signed"
printf 'Compte rendu de consultation du 12 mars\n' > "$work/content"
gate-probe mkannounce "$work/ann" "$work/sattrs" from=jean.dupont@medecin.mssante.fr \
  to=secretariat@clinique.mssante.fr subject="Compte rendu" attach=cr.pdf:98304 \
  content="$(sha256_hex "$work/content")" || fail "mkannounce"
h=$(sha256_hex "$work/sattrs")
before=$(card_cds_count)
gate-probe run "$verify" "announce:$work/ann" "$mse" "apdu:002A9E9A20${h}00" \
  "receipt:last:$work/receipt" > "$work/sign.out" 2> "$work/sign.err" &
signer=$!
wait_screen confirm-signature 20000 || fail "no confirm screen (now: $(screen_name))"
expect_match "$(screen_line 0)" "^Signer \?$" "title"
expect_match "$(screen_line 1)" "^De : jean\.dupont@mede$" "From"
expect_match "$(screen_line 3)" "^$(fingerprint_of "$h")$" "fingerprint"
cachet-sim-ctl key 8 >/dev/null && cachet-sim-ctl key 8 >/dev/null
poll 5000 sh -c "cachet-sim-ctl screen --json | jq -r '.lines[1]' | grep -q '^À : secretariat'" ||
  fail "scrolling does not show To (screen: $(screen_text | tr '\n' '|'))"
expect_match "$(screen_text)" "Objet : Compte rendu|  que\.mssante\.fr" "next lines"
cachet-sim-ctl key ok >/dev/null
wait $signer || fail "gate-probe failed: $(cat "$work/sign.err")"
out=$(cat "$work/sign.out")
expect_match "$out" "^announce 00 $(tr 'a-f' 'A-F' <<<"$h")$" "announce digest = SHA-256(signedAttrs)"
last=$(sed -n 4p <<<"$out")
[ "${last##* }" = 9000 ] || fail "PSO CDS: $last"
sig=${last%% *}
[ ${#sig} = 512 ] || fail "signature is not 256 bytes"
xxd -r -p <<<"$sig" > "$work/sig"
openssl dgst -sha256 -verify "$work/sign.pub" -signature "$work/sig" "$work/sattrs" >/dev/null ||
  fail "signature over signedAttrs does not verify"
[ $(( $(card_cds_count) - before )) = 1 ] || fail "the card should have signed exactly once"

step "the receipt verifies with the device key (openssl), a tampered one does not"
expect_match "$out" "^receipt 00 [0-9]+$" "GET_RECEIPT"
head -c 76 "$work/receipt" > "$work/body"
tail -c +78 "$work/receipt" > "$work/rsig"
openssl dgst -sha256 -verify "$work/device.pem" -signature "$work/rsig" "$work/body" >/dev/null ||
  fail "receipt does not verify"
body=$(od -An -tx1 -v "$work/body" | tr -d ' \n')
[ "${body:0:16}" = "4352435001810320" ] || fail "receipt header: ${body:0:16}"
[ "${body:24:64}" = "$h" ] || fail "receipt digest ${body:24:64} != $h"
cp "$work/body" "$work/body.bad"
printf '\x82' | dd of="$work/body.bad" bs=1 seek=5 conv=notrunc 2>/dev/null
if openssl dgst -sha256 -verify "$work/device.pem" -signature "$work/rsig" "$work/body.bad" >/dev/null 2>&1; then
  fail "a tampered receipt verifies"
fi

step "after an announcement, PSO CDS on another hash: refused, nothing reaches the card"
other=$(printf 'autre chose' | openssl dgst -sha256 -binary | od -An -tx1 | tr -d ' \n')
before=$(card_cds_count)
out=$(gate-probe run "$verify" "announce:$work/ann" "$mse" "apdu:002A9E9A20${other}00" status)
expect_match "$(sed -n 4p <<<"$out")" "^6985$" "malicious PSO CDS"
expect_match "$(sed -n 5p <<<"$out")" "^status 01 4 " "status: announcement kept, outcome mismatch"
[ "$(card_cds_count)" = "$before" ] || fail "a PSO CDS reached the card"
expect_no_match "$(screen_name)" "confirm-signature" "no confirmation for a refused request"

step "Cancel on the appliance: 64 01 in the client, nothing signed"
gate-probe run "$verify" "announce:$work/ann" "$mse" "apdu:002A9E9A20${h}00" > "$work/c.out" &
signer=$!
confirm_with cancel
wait $signer || fail "gate-probe failed"
expect_match "$(sed -n 4p "$work/c.out")" "^6401$" "Cancel"
[ "$(card_cds_count)" = "$before" ] || fail "signed although cancelled"

step "unannounced PSO CDS: shown as such with its fingerprint, OK → signed"
printf 'pas annoncé\n' > "$work/msg2"
h2=$(sha256_hex "$work/msg2")
gate-probe run "$verify" "$mse" "apdu:002A9E9A20${h2}00" "receipt:last:$work/receipt2" > "$work/u.out" &
signer=$!
wait_screen confirm-signature 20000 || fail "no confirm screen"
expect_match "$(screen_line 0)" "non annoncée" "unannounced title"
expect_match "$(screen_line 3)" "^$(fingerprint_of "$h2")$" "fingerprint"
cachet-sim-ctl key ok >/dev/null
wait $signer || fail "gate-probe failed"
last=$(sed -n 3p "$work/u.out")
[ "${last##* }" = 9000 ] || fail "unannounced PSO CDS: $last"
xxd -r -p <<<"${last%% *}" > "$work/sig2"
openssl dgst -sha256 -verify "$work/sign.pub" -signature "$work/sig2" "$work/msg2" >/dev/null ||
  fail "unannounced signature does not verify"
body2=$(head -c 76 "$work/receipt2" | od -An -tx1 -v | tr -d ' \n')
[ "${body2:10:6}" = "810020" ] || fail "unannounced receipt flags: ${body2:10:6}"

step "bad input: wrong messageDigest, unknown command or version → refused"
gate-probe mkannounce "$work/bad" "$work/bads" from=a@b.fr to=c@d.fr \
  content="$(sha256_hex "$work/content")" md="$other" || fail "mkannounce"
out=$(gate-probe run "announce:$work/bad" status escape:CA017F escape:CA0201 escape:CB0101)
expect_match "$(sed -n 1p <<<"$out")" "^announce 03$" "signedAttrs without the content digest"
expect_match "$(sed -n 2p <<<"$out")" "^status 00 " "no announcement kept"
expect_match "$(sed -n 3p <<<"$out")" "^escape refused" "unknown command"
expect_match "$(sed -n 4p <<<"$out")" "^escape refused" "unknown version"
expect_match "$(sed -n 5p <<<"$out")" "^escape refused" "unknown class"
echo "OK"
