#!/usr/bin/env bash
# Card removal seen by a PKCS#11 client that keeps running (p11-probe, which
# dlopen()s libcachet-pkcs11 like any application): logged in and signing;
# the card is pulled on the appliance; C_WaitForSlotEvent returns, the slot
# has no token, the old session answers CKR_DEVICE_REMOVED (or
# CKR_TOKEN_NOT_PRESENT); the card goes back in; the token is there again and
# a new session logs in and signs — the same process throughout.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/p11lib.sh"
command -v p11-probe >/dev/null || fail "p11-probe missing (build it)"
out=$work/probe.out
# (p11-probe is built with the module's sanitizers: no runtime to preload)
(p11-probe "$CACHET_PKCS11" removal "$CACHET_CARD_PIN" > "$out" 2> "$work/probe.err";
 echo $? > "$work/probe.rc") </dev/null &
probe=$!
bg_add $probe
# wait_line WORD: until the probe printed a line starting with WORD (30 s).
wait_line() {
  poll 30000 grep -q "^$1" "$out" ||
    fail "p11-probe did not reach '$1': $(cat "$out" "$work/probe.err" 2>/dev/null)"
}

step "the probe signs, then waits for a slot event"
wait_line signed
wait_line remove-now

step "card removed"
t0=$(now_ms)
cachet-sim-ctl card remove >/dev/null || fail "card remove"
wait_line removed
echo "   removal seen by the client after $(( $(now_ms) - t0 )) ms: $(grep '^removed' "$out")"
expect_match "$(grep '^removed' "$out")" "^removed (CKR_DEVICE_REMOVED|CKR_TOKEN_NOT_PRESENT|CKR_SESSION_HANDLE_INVALID) (CKR_DEVICE_REMOVED|CKR_TOKEN_NOT_PRESENT|CKR_SESSION_HANDLE_INVALID)" \
  "old session after removal"
expect_match "$(grep '^removed' "$out")" "CKR_DEVICE_REMOVED|CKR_TOKEN_NOT_PRESENT" "removal code"

step "card inserted again: the same client sees the token and signs"
wait_line insert-now
cachet-sim-ctl card insert "$CACHET_CARD_PROFILE" >/dev/null || fail "card insert"
wait_line back
wait $probe || true
[ "$(cat "$work/probe.rc")" = 0 ] || fail "p11-probe: $(cat "$work/probe.err")"
echo "OK"
