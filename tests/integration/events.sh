#!/usr/bin/env bash
# Card and reader events as a PC/SC client sees them: removal and insertion
# within 200 ms, removal during a signature gives the client an error (not a
# hang), unplugging the appliance makes the reader unavailable, plugging it back
# brings it back with the card usable.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gate_lib.sh"

# watch_then WANT CMD...: arms a PC/SC status-change wait, runs CMD, prints the
# milliseconds between the moment just before CMD and the event.
watch_then() {
  local want=$1; shift
  rm -f "$work/ready"
  pcsc-probe watch-card "$want" 5000 "$work/ready" > "$work/event" &
  local watcher=$!
  poll 5000 test -e "$work/ready" || fail "watcher not ready"
  local t0; t0=$(date +%s%3N)
  "$@" >/dev/null
  wait $watcher || fail "no '$want' event"
  echo $(( $(cat "$work/event") - t0 ))
}

step "removal seen by a PC/SC client within 200 ms"
ms=$(watch_then absent cachet-sim-ctl card remove)
echo "   removal seen after $ms ms"
[ "$ms" -lt 200 ] || fail "removal seen after $ms ms"

step "insertion seen within 200 ms"
ms=$(watch_then present cachet-sim-ctl card insert "$CACHET_CARD_PROFILE")
echo "   insertion seen after $ms ms"
[ "$ms" -lt 200 ] || fail "insertion seen after $ms ms"
out=$(pcsc-probe apdu 00200001)
expect_match "$out" "^63C[0-9]$|^9000$" "card usable after insertion"

step "removal during a signature: the client gets an error, not a hang"
pin_hex=$(printf '%s' "$CACHET_CARD_PIN" | od -An -tx1 | tr -d ' \n')
hash=$(printf 'x' | openssl dgst -sha256 -binary | od -An -tx1 | tr -d ' \n')
# A slow card (timing model) whose RSA operation takes 3 s, so that the card is
# certainly pulled while it computes the signature.
cp -r "$CACHET_SIM_PKI" "$work/pki"
sed -i 's/^timing_compute_rsa_ms *=.*/timing_compute_rsa_ms = 3000/' \
  "$work/pki/profiles/$CACHET_CARD_PROFILE/profile.conf"
cachet-sim-ctl card remove
CACHET_SIM_PKI="$work/pki" CACHET_CARD_TIMING=1 cachet-sim-ctl card insert "$CACHET_CARD_PROFILE"
pcsc-probe wait-card present 5000
card_apdus() { grep -c '^[0-9.]* APDU' "$CACHET_SIM_DIR/card.log" || true; }
before=$(card_apdus)
pcsc-probe apdu "0020000104$pin_hex" "002241B6068401818001 42" "002A9E9A20${hash}00" \
  > "$work/sign.out" 2> "$work/sign.err" &
signer=$!
# The appliance's gate holds the signature until the holder confirms it.
confirm_with ok
# The card logs each APDU once answered: after the MSE, the PSO CDS is on its way.
poll 10000 sh -c "[ \$(grep -c '^[0-9.]* APDU' '$CACHET_SIM_DIR/card.log') -ge $((before + 2)) ]" ||
  fail "signature did not start"
t0=$(now_ms)
cachet-sim-ctl card remove
deadline=$(( t0 + 3000 ))
while kill -0 $signer 2>/dev/null; do
  [ "$(now_ms)" -lt $deadline ] || { kill $signer; fail "client still waiting 3 s after removal"; }
  sleep 0.01
done
if wait $signer; then
  cat "$work/sign.out" >&2
  fail "signature reported success although the card was pulled"
fi
echo "   client got: $(tr '\n' ' ' < "$work/sign.err")after $(( $(now_ms) - t0 )) ms"
cachet-sim-ctl card insert "$CACHET_CARD_PROFILE"
pcsc-probe wait-card present 5000 || fail "card not back"

step "unplug: the reader becomes unavailable; plug: it comes back, card usable"
# pcscd 1.9.9 never removes a reader.conf reader from its list (only udev
# hotplug does that, for a real USB device): unplugged, ours stays listed but
# reports itself unavailable to every client, and comes back by itself.
t0=$(now_ms)
cachet-sim-ctl unplug
pcsc-probe wait-reader unusable 5000 || fail "reader still usable after unplug"
echo "   reader unavailable after $(( $(now_ms) - t0 )) ms"
if pcsc-probe apdu 00200001 >/dev/null 2>&1; then fail "APDU went through an unplugged appliance"; fi
t0=$(now_ms)
cachet-sim-ctl plug
pcsc-probe wait-reader usable 5000 || fail "reader not back after plug"
pcsc-probe wait-card present 5000 || fail "card not seen after plug"
echo "   reader and card back after $(( $(now_ms) - t0 )) ms"
out=$(opensc-tool -n)
expect_match "$out" "^IAS-ECC$" "card after re-plug"
echo "OK"
