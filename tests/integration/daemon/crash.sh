#!/usr/bin/env bash
# kill -9 of cachetd in the middle of a signature: the audit log it leaves
# verifies (`cachet audit verify --log`, offline), the client gets a clear
# "cachetd unreachable" (exit 3), and a new cachetd starts on the same socket
# and audit log and goes on appending to a chain that still verifies.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon_lib.sh"
cd "$work"
# The appliance asks to confirm each signature: a simulated holder presses OK.
holder_start

step "a few audited operations"
make_mail msg.eml 1
cachet --pin-fd 3 sign-mail msg.eml -o s1.eml 3<<<"$CACHET_CARD_PIN" 2>/dev/null || fail "sign-mail"
head -c 32 /dev/urandom > chal
cachet login --challenge chal -o sig > /dev/null 2>&1 || fail "login"

step "kill -9 of cachetd while the slow card signs"
slow_card
cachet --pin-fd 3 verify-pin 3<<<"$CACHET_CARD_PIN" > /dev/null || fail "verify-pin"
signing=$(grep -c "signing with the sign key" "$CACHETD_LOG" || true)
rc_file=$work/rc
( rc=0; cachet sign-mail msg.eml -o s2.eml 2> sign.err || rc=$?; echo $rc > "$rc_file" ) &
poll 10000 sh -c "[ \$(grep -c 'signing with the sign key' '$CACHETD_LOG') -gt $signing ]" ||
  fail "the signature did not start"
kill -9 "$CACHETD_PID"
poll 3000 test -s "$rc_file" || fail "client still waiting after cachetd died"
rc=$(cat "$rc_file")
echo "   client: exit $rc: $(cat sign.err)"
[ "$rc" = 3 ] || fail "client of a dead cachetd: exit $rc (want 3)"
expect_match "$(cat sign.err)" "cachetd\) ne répond pas" "unreachable message"
[ ! -e s2.eml ] || fail "output written by a signature that did not finish"

step "the audit log left behind verifies"
out=$(cachet audit verify --log "$CACHETD_AUDIT_LOG") || fail "audit log after kill -9: $out"
echo "   $out"
expect_match "$out" "Journal d'audit intègre" "offline verify"

step "a new cachetd takes over the stale socket and the log"
cachetd --trust "$CACHET_SIM_PKI/roots.pem" --audit-log "$CACHETD_AUDIT_LOG" \
  --cache-dir "$CACHET_SIM_DIR/cache/cachet" --log "$work/cachetd2.log" &
new=$!
trap 'kill $new 2>/dev/null || true' EXIT
poll 10000 cachet status || fail "the new cachetd does not answer ($(cat "$work/cachetd2.log"))"
cachet --pin-fd 3 sign-mail msg.eml -o s3.eml 3<<<"$CACHET_CARD_PIN" 2>/dev/null || fail "sign-mail with the new cachetd"
cachet verify-mail s3.eml > /dev/null || fail "signature by the new cachetd"
expect_match "$(cachet audit verify)" "Journal d'audit intègre" "chain after restart"
expect_match "$(cat "$work/cachetd2.log")" "from the cache" "certificates from the cache after restart"
kill $new
wait $new || true
echo "OK"
