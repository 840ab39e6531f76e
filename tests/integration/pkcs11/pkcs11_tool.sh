#!/usr/bin/env bash
# libcachet-pkcs11 with OpenSC's pkcs11-tool (unmodified), in the simulated
# environment: the slot, the token named after the practitioner, its objects
# and mechanisms (-L -O -M); --login --test ends with "No errors"; signatures
# with both keys verify with openssl against the profile's certificates; a
# login typed on the appliance's PIN pad (protected authentication path); only
# C_GetFunctionList is exported; without cachetd, an empty slot list and one
# log line.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/p11lib.sh"
pdir=$(profile_dir)
surname=$(sed -n 's/^surname *= *//p' "$pdir/profile.conf")
given=$(sed -n 's/^given_name *= *//p' "$pdir/profile.conf")
serial=$(sed -n 's/^serial *= *//p' "$pdir/profile.conf")
auto_confirm_start
m=(p11run pkcs11-tool --module "$CACHET_PKCS11")

step "exports: C_GetFunctionList only"
exports=$(nm -D --defined-only "$CACHET_PKCS11" | awk '{print $3}')
[ "$exports" = C_GetFunctionList ] || fail "exported symbols: $exports"

step "pkcs11-tool -L -O -M"
out=$("${m[@]}" -L -O -M 2>&1) || fail "pkcs11-tool -L -O -M: $out"
expect_match "$out" "token label +: $surname $given" "token label"
expect_match "$out" "serial num +: ${serial: -16}" "token serial"
expect_match "$out" "login required" "token flags"
for mech in RSA-PKCS SHA1-RSA-PKCS SHA256-RSA-PKCS; do
  expect_match "$out" "^ *$mech, keySize=\{2048,2048\}, hw, sign" "mechanism $mech"
done
expect_no_match "$out" "PSS|OAEP" "mechanisms"
expect_match "$out" "label: +Certificat d'authentification CPS" "auth certificate"
expect_match "$out" "label: +Certificat de signature CPS" "sign certificate"
[ "$(grep -c 'Public Key Object; RSA 2048 bits' <<<"$out")" = 2 ] || fail "two public keys: $out"

step "pkcs11-tool --login --test"
out=$("${m[@]}" --login --pin "$CACHET_CARD_PIN" --test 2>&1) || fail "--test: $out"
expect_match "$out" "No errors" "pkcs11-tool --test"
expect_match "$out" "testing key 0 \(CPS_PRIV_AUT\)" "auth key tested"
expect_match "$out" "CPS_PRIV_SIG" "sign key tested"

step "signatures with both keys, verified by openssl"
printf 'message pkcs11\n' > "$work/msg"
# (pkcs11-tool picks the key for --sign by --id only)
for role in auth sign; do
  label=CPS_PRIV_AUT; [ $role = sign ] && label=CPS_PRIV_SIG
  id=$(key_id "$label")
  [ -n "$id" ] || fail "no public key $label"
  "${m[@]}" --login --pin "$CACHET_CARD_PIN" --sign -m SHA256-RSA-PKCS --id "$id" \
    -i "$work/msg" -o "$work/$role.sig" >/dev/null 2>&1 || fail "sign with $label"
  openssl x509 -inform DER -in "$pdir/$role.crt.der" -pubkey -noout > "$work/$role.pub"
  openssl dgst -sha256 -verify "$work/$role.pub" -signature "$work/$role.sig" "$work/msg" \
    >/dev/null || fail "signature of $label does not verify"
  # CKM_RSA_PKCS over a DigestInfo: the signature key's hash comes out of it
  digestinfo_sha256 "$work/msg" "$work/di"
  "${m[@]}" --login --pin "$CACHET_CARD_PIN" --sign -m RSA-PKCS --id "$id" \
    -i "$work/di" -o "$work/$role.di.sig" >/dev/null 2>&1 || fail "RSA-PKCS with $label"
  cmp -s "$work/$role.sig" "$work/$role.di.sig" || fail "RSA-PKCS and SHA256-RSA-PKCS differ ($label)"
done
# The signature key signs only hashes: raw data is refused.
head -c 40 /dev/urandom > "$work/raw"
rc=0; out=$("${m[@]}" --login --pin "$CACHET_CARD_PIN" --sign -m RSA-PKCS --id "$(key_id CPS_PRIV_SIG)" \
  -i "$work/raw" -o "$work/raw.sig" 2>&1) || rc=$?
[ $rc != 0 ] || fail "raw data signed with the signature key"
expect_match "$out" "CKR_DATA_INVALID" "raw data on the signature key"

step "wrong PIN: CKR_PIN_INCORRECT, tries left on the token"
rc=0; out=$("${m[@]}" --login --pin 9999 -O 2>&1) || rc=$?
expect_match "$out" "CKR_PIN_INCORRECT" "wrong PIN"
out=$("${m[@]}" -L 2>&1)
expect_match "$out" "user PIN count low" "tries-left flag"
"${m[@]}" --login --pin "$CACHET_CARD_PIN" -O >/dev/null 2>&1 || fail "login after a wrong PIN"
out=$("${m[@]}" -L 2>&1)
expect_no_match "$out" "user PIN count low" "tries-left flag after a good PIN"

if grep -q "PIN pad present" <<<"$out"; then
  step "login on the appliance's PIN pad (NULL PIN)"
  # A fresh insertion: the card's PIN is not verified any more.
  cachet-sim-ctl card remove >/dev/null
  poll 5000 sh -c '! cachet whoami' || fail "cachetd did not see the removal"
  cachet-sim-ctl card insert "$CACHET_CARD_PROFILE" >/dev/null
  poll 30000 cachet whoami || fail "cachetd did not bind the card again"
  ( r=0; p11run pkcs11-tool --module "$CACHET_PKCS11" --login -O > "$work/pinpad.out" 2>&1 || r=$?
    echo $r > "$work/pinpad.rc" ) &
  bg=$!
  poll 20000 sh -c 'cachet-sim-ctl screen --json | grep -q "\"pin-entry\""' ||
    fail "the appliance did not ask for the PIN: $(cachet-sim-ctl screen --json)"
  for k in $(printf '%s' "$CACHET_CARD_PIN" | sed 's/./& /g') ok; do cachet-sim-ctl key "$k" >/dev/null; done
  wait $bg || true
  [ "$(cat "$work/pinpad.rc")" = 0 ] || fail "PIN pad login: $(cat "$work/pinpad.out")"
  expect_match "$(cat "$work/pinpad.out")" "Private Key Object" "private keys after a PIN pad login"
fi

step "cachetd not running: empty slot list, one log line"
rc=0
CACHETD_SOCKET="$work/none.sock" p11run pkcs11-tool --module "$CACHET_PKCS11" -L \
  > "$work/down.out" 2> "$work/down.err" || rc=$?
expect_match "$(cat "$work/down.out")" "cachetd not running" "slot description"
expect_match "$(cat "$work/down.out")" "\(empty\)" "no token"
[ "$(grep -c 'cachet-pkcs11:' "$work/down.err")" = 1 ] || fail "log lines: $(cat "$work/down.err")"
rc=0; out=$(CACHETD_SOCKET="$work/none.sock" p11run pkcs11-tool --module "$CACHET_PKCS11" -T 2>&1) || rc=$?
expect_match "$out" "No slots" "no slot with a token"
echo "OK"
