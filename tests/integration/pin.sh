#!/usr/bin/env bash
# Holder PIN through unmodified OpenSC: each wrong PIN costs exactly one try and
# the tries left are reported (2, then 1); the third wrong PIN blocks the card;
# the right PIN is then refused; the unblock code (RESET RETRY COUNTER) restores it.
. "$(dirname "$0")/lib.sh"

pin_status() { pcsc-probe apdu 00200001; }
p11_login() {
  pkcs11-tool --module "$OPENSC_PKCS11" --login --pin "$1" -O > "$work/login.out" 2>&1
}
token_flags() { pkcs11-tool --module "$OPENSC_PKCS11" -L 2>/dev/null | grep -i "token flags" || true; }

step "a fresh card has 3 tries"
expect_match "$(pin_status)" "^63C3$" "initial PIN status"

step "wrong PIN: CKR_PIN_INCORRECT, 2 tries left"
p11_login 9999 && fail "login with a wrong PIN succeeded"
expect_match "$(cat "$work/login.out")" "CKR_PIN_INCORRECT" "first wrong PIN"
expect_match "$(pin_status)" "^63C2$" "tries after one wrong PIN"
expect_match "$(token_flags)" "user PIN count low" "token flags after one wrong PIN"

step "wrong PIN again: 1 try left"
p11_login 9998 && fail "login with a wrong PIN succeeded"
expect_match "$(pin_status)" "^63C1$" "tries after two wrong PINs"
expect_match "$(token_flags)" "final user PIN try" "token flags after two wrong PINs"

step "right PIN resets the counter"
p11_login "$CACHET_CARD_PIN" || { cat "$work/login.out" >&2; fail "right PIN refused"; }
# Verified (9000) until the card is reset, or back to 3 tries once pcscd powered it down.
expect_match "$(pin_status)" "^(9000|63C3)$" "PIN status after the right PIN"

step "three wrong PINs block the card"
for p in 9999 9998 9997; do p11_login $p && fail "wrong PIN accepted"; done
expect_match "$(pin_status)" "^6983$" "blocked status"
expect_match "$(token_flags)" "user PIN locked" "token flags when blocked"
p11_login "$CACHET_CARD_PIN" && fail "right PIN accepted on a blocked card"
expect_match "$(cat "$work/login.out")" "CKR_PIN_LOCKED" "right PIN on a blocked card"

step "the unblock code restores the PIN"
puk_hex=$(printf '%s' "$CACHET_CARD_PUK" | od -An -tx1 | tr -d ' \n')
pin_hex=$(printf '%s' "$CACHET_CARD_PIN" | od -An -tx1 | tr -d ' \n')
out=$(pcsc-probe apdu "00200002$(printf '%02X' $(( ${#puk_hex} / 2 )))$puk_hex" \
                      "002C0201$(printf '%02X' $(( ${#pin_hex} / 2 )))$pin_hex")
expect_match "$(sed -n 1p <<<"$out")" "^9000$" "VERIFY unblock code"
expect_match "$(sed -n 2p <<<"$out")" "^9000$" "RESET RETRY COUNTER"
expect_match "$(pin_status)" "^(9000|63C3)$" "PIN status after unblocking"
p11_login "$CACHET_CARD_PIN" || { cat "$work/login.out" >&2; fail "PIN refused after unblocking"; }
echo "OK"
