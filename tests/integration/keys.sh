#!/usr/bin/env bash
# Keys pressed at random on the appliance: at rest they change nothing; during
# a signature confirmation only OK and Cancel decide (digits and Correction
# scroll or do nothing); Cancel refuses with 64 01 and nothing reaches the card;
# the appliance is back at a sane screen and keeps working.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gate_lib.sh"

keys=(0 1 2 3 4 5 6 7 8 9 ok cancel clear)
press_random() { # N [SET...]
  local n=$1; shift
  local set=("$@")
  for _ in $(seq "$n"); do
    cachet-sim-ctl key "${set[RANDOM % ${#set[@]}]}" >/dev/null || fail "key refused"
  done
}
sane_screen() {
  local s; s=$(screen_name)
  case "$s" in idle|insert-card|result|error) return 0 ;; esac
  echo "screen: $s" >&2; return 1
}

step "at rest: 60 random keys change nothing"
RANDOM=7
press_random 60 "${keys[@]}"
poll 5000 sane_screen || fail "the appliance is not at rest after random keys"
expect_match "$(pcsc-probe apdu 00200001)" "^(63C[0-3]|9000)$" "card answers after random keys"

step "during a confirmation: random digits and Correction decide nothing; Cancel refuses"
pin_hex=$(printf '%s' "$CACHET_CARD_PIN" | od -An -tx1 | tr -d ' \n')
hash=$(printf 'au hasard' | openssl dgst -sha256 -binary | od -An -tx1 | tr -d ' \n')
before=$(card_cds_count)
pcsc-probe apdu "0020000104$pin_hex" "002241B6068401818001 42" "002A9E9A20${hash}00" \
  > "$work/sign.out" 2>&1 &
signer=$!
wait_screen confirm-signature 20000 || fail "no confirmation asked"
press_random 40 0 1 2 3 4 5 6 7 8 9 clear
[ "$(screen_name)" = confirm-signature ] || fail "a digit or Correction ended the confirmation"
kill -0 $signer 2>/dev/null || fail "the client stopped waiting before Cancel"
cachet-sim-ctl key cancel >/dev/null
wait $signer || true
expect_match "$(sed -n 3p "$work/sign.out")" "^6401$" "PSO CDS after Cancel"
[ "$(card_cds_count)" = "$before" ] || fail "a PSO CDS reached the card"
poll 5000 sane_screen || fail "the appliance is not back at rest after Cancel"
expect_match "$(pcsc-probe apdu 00200001)" "^(63C[0-3]|9000)$" "card answers after Cancel"
echo "OK"
