#!/usr/bin/env bash
# A card that never answers, sends garbage, or stops in the middle of its
# answer: the PC/SC client gets an error (not a hang, not a crash) — or, in T=1,
# the right answer after the protocol's own error recovery (ISO/IEC 7816-3
# §11.6.3: R-block, retransmission) — and the chain works for the next command.
. "$(dirname "$0")/lib.sh"

for fault in mute garbage truncate; do
  step "card fault: $fault"
  expect_match "$(pcsc-probe apdu 00200001)" "^(63C[0-3]|9000)$" "card answers before the fault"
  cachet-sim-ctl card fault $fault
  t0=$(now_ms)
  # A certificate read: a long answer, so that "truncate" cuts a block in two.
  if out=$(pcsc-probe apdu "00A4090406 3F000001C001 00" "00B0000000" 2>&1); then
    # Only a recovered T=1 exchange may succeed, and then with the right bytes.
    [ "$CACHET_CARD_PROFILE" = cps-t1 ] || fail "$fault: the client got a success: $out"
    want=$(head -c 256 "$(profile_dir)/auth.crt.der" | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
    [ "$(sed -n 2p <<<"$out")" = "$want 9000" ] || fail "$fault: wrong data after T=1 recovery: $out"
    echo "   recovered by T=1 error handling after $(( $(now_ms) - t0 )) ms"
  else
    ms=$(( $(now_ms) - t0 ))
    echo "   client error after $ms ms: $(tail -n1 <<<"$out")"
    # Bounded by the card's waiting times (T=0 WWT 3 s; T=1 BWT and retries).
    [ $ms -lt 20000 ] || fail "$fault: the error took $ms ms"
  fi
  # The next command works: the reader resets the card after the error.
  poll 10000 pcsc-probe apdu 00200001 || fail "$fault: the chain does not recover"
  expect_match "$(pcsc-probe apdu 00200001)" "^(63C[0-3]|9000)$" "card answers after the fault"
  expect_match "$(cachet-sim-ctl status)" "usb=plugged card=present" "appliance after the fault"
done
echo "OK"
