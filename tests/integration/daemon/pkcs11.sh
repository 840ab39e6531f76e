#!/usr/bin/env bash
# cachetd on its PKCS#11 backend (any module; here a SoftHSM2 token made from
# the profile's keys and certificates, no card reader involved): whoami,
# sign-mail verified by openssl, login verified by openssl dgst, a wrong PIN.
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
command -v softhsm2-util > /dev/null || skip "softhsm2-util missing (Debian package softhsm2)"
module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
  [ -f "$m" ] && { module=$m; break; }
done
[ -n "$module" ] || skip "libsofthsm2.so missing"
cd "$work"

step "a SoftHSM2 token from profile $CACHET_CARD_PROFILE, and a cachetd of its own on it"
SOFTHSM2_CONF=$("$here/../../sim/softhsm/make-token.sh" "$work/hsm" "$(profile_dir)")
export SOFTHSM2_CONF
mkdir -m 0700 run
sock=$work/run/cachetd.sock
cachetd --socket "$sock" --backend pkcs11 --pkcs11-module "$module" \
  --trust "$CACHET_SIM_PKI/roots.pem" --audit-log "$work/audit.log" --cache-dir "$work/cache" \
  --log "$work/cachetd.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT
c() { cachet --socket "$sock" "$@"; }
poll 10000 c status || fail "cachetd on SoftHSM2 does not answer: $(cat "$work/cachetd.log")"
expect_match "$(c status)" "accès carte : pkcs11" "backend"

step "whoami"
out=$(c whoami) || fail "whoami: $out"
surname=$(sed -n 's/^surname *= *//p' "$(profile_dir)/profile.conf")
expect_match "$out" "$surname" "holder"
expect_match "$out" "reconnus \(IGC-Santé\)" "chain"

step "wrong PIN then sign-mail, verified by openssl"
rc=0; out=$(c --pin-fd 3 verify-pin 3<<<"9999" 2>&1) || rc=$?
[ $rc = 5 ] || fail "wrong PIN: exit $rc: $out"
printf 'From: <%s>\r\nTo: <a@b.fr>\r\nSubject: pkcs11\r\n\r\nbonjour\r\n' \
  "$(sed -n 's/^email *= *//p' "$(profile_dir)/profile.conf")" > msg.eml
c --pin-fd 3 sign-mail msg.eml -o signed.eml 3<<<"$CACHET_CARD_PIN" 2>/dev/null || fail "sign-mail"
openssl smime -verify -CAfile "$CACHET_SIM_PKI/roots.pem" -in signed.eml -out /dev/null 2>/dev/null ||
  fail "openssl smime -verify"
c verify-mail signed.eml > /dev/null || fail "verify-mail"

step "login, verified by openssl dgst"
head -c 20 /dev/urandom > chal
c login --challenge chal -o chal.sig > /dev/null 2>&1 || fail "login"
openssl x509 -inform DER -in "$(profile_dir)/auth.crt.der" -pubkey -noout > auth.pub.pem
openssl dgst -sha256 -verify auth.pub.pem -signature chal.sig chal > /dev/null || fail "login signature"
c audit verify > /dev/null || fail "audit"
echo "OK"
