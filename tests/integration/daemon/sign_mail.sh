#!/usr/bin/env bash
# S/MIME through cachetd with unmodified tools on the other side: `cachet
# sign-mail` output verifies with `openssl smime -verify` against the test
# roots and with `cachet verify-mail`; a tampered message fails; login signs a
# challenge that `openssl dgst -verify` accepts; a wrong PIN costs exactly one
# try and says how many are left; every card operation is in the audit log,
# whose chain verifies.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon_lib.sh"
cd "$work"
# Every signature with the signature key is confirmed on the appliance: a
# simulated holder presses OK (daemon/trust.sh tests the confirmation itself).
holder_start

step "sign-mail with --pin-fd"
make_mail msg.eml 1
cachet --pin-fd 3 sign-mail msg.eml -o signed.eml 3<<<"$CACHET_CARD_PIN" 2> sign.err ||
  { cat sign.err >&2; fail "sign-mail failed"; }
expect_match "$(cat sign.err)" "Message signé" "sign-mail message"
expect_match "$(cat signed.eml)" "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"" \
  "multipart/signed"
expect_match "$(head -3 signed.eml)" "^From: " "headers kept"

step "openssl smime -verify accepts it (test roots + intermediates)"
openssl smime -verify -CAfile "$CACHET_SIM_PKI/roots.pem" -certfile "$CACHET_SIM_PKI/intermediates.pem" \
  -in signed.eml -out content.txt 2> ossl.err || { cat ossl.err >&2; fail "openssl smime -verify"; }
expect_match "$(cat content.txt)" "compte rendu de test" "signed content"
# The chain is in the message too: the roots alone are enough.
openssl smime -verify -CAfile "$CACHET_SIM_PKI/roots.pem" -in signed.eml -out /dev/null 2>/dev/null ||
  fail "openssl smime -verify without -certfile (chain not included?)"

step "cachet verify-mail: valid, signer = From"
out=$(cachet verify-mail signed.eml) || fail "verify-mail refused a good signature: $out"
expect_match "$out" "Signature valide" "verify-mail ok"
expect_match "$out" "L'expéditeur \(From\) est bien le signataire" "From matches"
out=$(cachet verify-mail - < signed.eml) || fail "verify-mail from stdin"

step "a tampered message fails (exit 1), for cachet and openssl"
sed 's/compte rendu de test/compte rendu falsifie/' signed.eml > tampered.eml
rc=0; out=$(cachet verify-mail tampered.eml 2>&1) || rc=$?
[ $rc = 1 ] || fail "verify-mail of a tampered message: exit $rc (want 1): $out"
expect_match "$out" "Signature invalide" "tampered message"
openssl smime -verify -CAfile "$CACHET_SIM_PKI/roots.pem" -in tampered.eml -out /dev/null 2>/dev/null &&
  fail "openssl accepted a tampered message"
rc=0; out=$(cachet --json verify-mail tampered.eml) || rc=$?
expect_match "$out" "\"code\": \"bad-signature\"" "--json error object"

step "sign-mail from stdin to stdout; not MIME is refused"
make_mail msg2.eml 2
cachet sign-mail < msg2.eml > signed2.eml 2>/dev/null || fail "sign-mail stdin → stdout"
cachet verify-mail signed2.eml >/dev/null || fail "second signature does not verify"
rc=0; printf 'pas un message\n' | cachet sign-mail > /dev/null 2> nm.err || rc=$?
[ $rc = 1 ] || fail "not-MIME input: exit $rc (want 1)"
expect_match "$(cat nm.err)" "n'est pas un message" "not-mime message"

step "login: SHA-256(challenge) signed with the authentication key"
head -c 48 /dev/urandom > challenge.bin
cachet --json login --challenge challenge.bin -o login.sig > login.json || fail "login"
python3 - login.json <<'PY'
import base64, json, sys
r = json.load(open(sys.argv[1]))
assert r["algorithm"] == "sha256WithRSAEncryption", r
open("login-cert.der", "wb").write(base64.b64decode(r["certificate"]))
assert len(r["chain"]) >= 1, "no chain"
PY
cmp login-cert.der "$(profile_dir)/auth.crt.der" || fail "login certificate is not the auth certificate"
openssl x509 -inform DER -in login-cert.der -pubkey -noout > auth.pub.pem
openssl dgst -sha256 -verify auth.pub.pem -signature login.sig challenge.bin > /dev/null ||
  fail "openssl dgst -verify refused the login signature"

step "wrong PIN: one try spent, tries left reported (exit 5); the right PIN restores them"
rc=0; out=$(cachet --pin-fd 3 verify-pin 3<<<"9999" 2>&1) || rc=$?
[ $rc = 5 ] || fail "wrong PIN: exit $rc (want 5): $out"
expect_match "$out" "Code porteur incorrect" "wrong PIN message"
expect_match "$out" "Il reste 2 essai\(s\)" "tries left after one wrong PIN"
expect_match "$(cachet status)" "2 essai\(s\) restant\(s\)" "status after a wrong PIN"
cachet --pin-fd 3 verify-pin 3<<<"$CACHET_CARD_PIN" > /dev/null || fail "right PIN refused"
rc=0; out=$(cachet --pin-fd 3 sign-mail msg.eml 3</dev/null 2>&1 >/dev/null) || rc=$?
[ $rc = 0 ] || fail "sign-mail after verify-pin needs no PIN: exit $rc: $out"

step "audit: one entry per card operation, chain intact"
out=$(cachet audit show -n 50)
echo "$out" | sed 's/^/   /'
[ "$(grep -c ' sign-mail ' <<<"$out")" -ge 3 ] || fail "sign-mail entries missing"
expect_match "$out" " login +auth +ok " "login entry"
expect_match "$out" " verify-pin +- +pin-incorrect " "failed verify-pin entry"
expect_match "$out" " sign-mail +sign +not-mime " "refused sign-mail entry"
expect_no_match "$(cat "$CACHETD_AUDIT_LOG" "$CACHETD_LOG")" "$CACHET_CARD_PIN\"|9999" "PIN in a log"
expect_match "$(cachet audit verify)" "Journal d'audit intègre" "audit verify through cachetd"
cachet audit verify --log "$CACHETD_AUDIT_LOG" > /dev/null || fail "offline audit verify"
cp "$CACHETD_AUDIT_LOG" edited.log
cp "$CACHETD_AUDIT_LOG.head" edited.log.head 2>/dev/null || true
sed -i '1s/"result":"ok"/"result":"no"/; 1s/"result":"pin-incorrect"/"result":"ok"/' edited.log
rc=0; cachet audit verify --log edited.log > /dev/null || rc=$?
[ $rc = 1 ] || fail "an edited audit log verifies (exit $rc)"
echo "OK"
