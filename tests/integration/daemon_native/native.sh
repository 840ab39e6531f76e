#!/usr/bin/env bash
# cachetd's native CPx backend (host/daemon/card/card_native.c) against the
# virtual card, through card-native-probe: bind reads the profile's serial,
# certificates byte for byte, PIN tries (a wrong PIN costs exactly one), both
# keys sign and verify with openssl, events within 200 ms, a card pulled during
# a signature gives card-removed (not a hang), the reader leaving and coming
# back. Prints the APDUs of one steady-state signature (card-line bench input).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../gate_lib.sh"

command -v card-native-probe >/dev/null || skip "card-native-probe not built"
command -v jq >/dev/null || skip "jq missing"
# The probe signs with the signature key unannounced: the appliance shows each
# request and waits for OK, which a simulated holder gives (gate_lib.sh).
holder_start
probe() { card-native-probe "$@"; }
pdir=$(profile_dir)
serial=$(sed -n 's/^serial *= *//p' "$pdir/profile.conf")
pin=$CACHET_CARD_PIN
wrong=9999; [ "$pin" != $wrong ] || wrong=9998
sim_apdus() { cachet-sim-ctl status | sed -n 's/.*apdus=\([0-9]*\).*/\1/p'; }

# value KEY TEXT: the value of KEY=... on the line of TEXT
value() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2" | head -n1; }

step "bind: EF.SN gives the profile's serial ($serial) in one APDU"
out=$(probe stats-reset bind expect:ok stats)
echo "$out" | sed 's/^/   /'
expect_match "$out" "^bind status=ok present=1 pinpad=1 serial=$serial " "bind"
expect_match "$out" "^stats apdus=1 " "bind costs one APDU"

step "read_certs: certificates byte for byte"
out=$(probe bind stats-reset certs:"$work" expect:ok stats)
echo "$out" | sed 's/^/   /'
for c in auth sign ca; do
  cmp -s "$work/$c.der" "$pdir/$c.crt.der" || fail "$c certificate differs from $pdir/$c.crt.der"
done
expect_match "$out" "^cert role=auth .*id=E828BD080F8025000001FF001002 " "auth certificate ID"
expect_match "$out" "^cert role=sign .*id=E828BD080F8025000001FF001001 " "sign certificate ID"

step "PIN: 3 tries; a malformed PIN never reaches the card; a wrong PIN costs one try"
out=$(probe bind pin-status expect:ok stats-reset verify:12 expect:pin-format verify:12a4 \
        expect:pin-format verify:123456789 expect:pin-format stats pin-status)
expect_match "$out" "^pin-status status=ok tries=3 verified=0" "fresh card"
expect_match "$out" "^stats apdus=0 " "malformed PINs sent nothing"
out=$(probe bind verify:$wrong expect:pin-incorrect pin-status)
expect_match "$out" "^verify status=pin-incorrect .*tries=2" "one wrong PIN"
expect_match "$out" "^pin-status status=ok tries=2 verified=0" "tries after one wrong PIN"
out=$(probe bind verify:"$pin" expect:ok pin-status)
expect_match "$out" "^pin-status status=ok tries=-1 verified=1" "right PIN"
out=$(probe bind pin-status)
expect_match "$out" "tries=(3 verified=0|-1 verified=1)" "counter back to 3"

step "PIN pad: a NULL PIN is typed on the appliance (PC/SC part 10 VERIFY_PIN_DIRECT)"
probe bind logout verify-pinpad expect:ok pin-status > "$work/pinpad.out" 2>&1 &
pinpad_probe=$!
wait_screen pin-entry 20000 || fail "the appliance did not ask for the PIN"
for d in $(printf '%s' "$pin" | sed 's/./& /g'); do cachet-sim-ctl key "$d" >/dev/null; done
cachet-sim-ctl key ok >/dev/null
wait $pinpad_probe || { cat "$work/pinpad.out" >&2; fail "PIN pad verify"; }
expect_match "$(cat "$work/pinpad.out")" "^pin-status status=ok tries=-1 verified=1" "verified on the PIN pad"
probe bind logout >/dev/null

step "signatures: AUTH (INTERNAL AUTHENTICATE) and SIGN (PSO CDS) verify with openssl"
printf 'Compte rendu de consultation\n' > "$work/msg"
digestinfo_sha256 "$work/msg" "$work/di"
openssl dgst -sha256 -binary "$work/msg" > "$work/h256"
openssl dgst -sha1 -binary "$work/msg" > "$work/h1"
openssl x509 -inform DER -in "$pdir/auth.crt.der" -noout -pubkey > "$work/auth.pub"
openssl x509 -inform DER -in "$pdir/sign.crt.der" -noout -pubkey > "$work/sign.pub"
out=$(probe bind \
  sign:sign:sha256:"$work/h256":"$work/s0" expect:pin-required \
  verify:"$pin" expect:ok \
  sign:auth:rsa-pkcs:"$work/di":"$work/s-auth-di" expect:ok \
  sign:auth:sha256:"$work/h256":"$work/s-auth-256" expect:ok \
  sign:sign:sha256:"$work/h256":"$work/s-sign-256" expect:ok \
  sign:sign:sha1:"$work/h1":"$work/s-sign-1" expect:ok \
  sign:sign:rsa-pkcs:"$work/di":"$work/s-sign-di" expect:ok \
  sign:sign:rsa-pkcs:"$work/msg":"$work/s-bad" expect:bad-input \
  sign:sign:sha256:"$work/msg":"$work/s-bad" expect:bad-input \
  run:"cachet-sim-ctl status > $work/line0" \
  stats-reset sign:sign:sha256:"$work/h256":"$work/s-steady" expect:ok stats \
  run:"cachet-sim-ctl status > $work/line1" \
  logout sign:sign:sha256:"$work/h256":"$work/s-out" expect:pin-required pin-status) ||
  { echo "$out" >&2; fail "signature steps"; }
for s in auth-di auth-256; do
  openssl dgst -sha256 -verify "$work/auth.pub" -signature "$work/s-$s" "$work/msg" >/dev/null ||
    fail "AUTH signature ($s) does not verify with the authentication certificate"
done
for s in sign-256 sign-di steady; do
  openssl dgst -sha256 -verify "$work/sign.pub" -signature "$work/s-$s" "$work/msg" >/dev/null ||
    fail "SIGN signature ($s) does not verify with the signature certificate"
done
openssl dgst -sha1 -verify "$work/sign.pub" -signature "$work/s-sign-1" "$work/msg" >/dev/null ||
  fail "SIGN SHA-1 signature does not verify"
expect_match "$out" "^pin-status status=ok tries=3 verified=0" "logout reset the card's PIN state"

step "one steady-state signature (SIGN key, SHA-256, card known, PIN verified)"
stats=$(grep '^stats ' <<<"$out")
apdus=$(value apdus "$stats")
[ "$apdus" = 3 ] || fail "steady-state signature took $apdus APDUs (SELECT DF + MSE SET DST + PSO CDS)"
l0=$(cat "$work/line0"); l1=$(cat "$work/line1")
echo "   BENCH native steady-state signature: apdus=$apdus bytes_sent=$(value sent "$stats")" \
     "bytes_recv=$(value recv "$stats") card_line_apdus=$(( $(value apdus "$l1") - $(value apdus "$l0") ))" \
     "card_line_chars=$(( $(value chars_sent "$l1") - $(value chars_sent "$l0") + $(value chars_recv "$l1") - $(value chars_recv "$l0") ))" \
     "protocol=$(value protocol "$l1")"

step "another client resets the card: the next signature says pin-required, no retry"
if command -v opensc-tool >/dev/null; then
  out=$(probe bind verify:"$pin" expect:ok sign:sign:sha256:"$work/h256":"$work/s-r0" expect:ok \
          run:"opensc-tool --reset warm >/dev/null 2>&1" \
          stats-reset sign:sign:sha256:"$work/h256":"$work/s-r1" expect:pin-required stats \
          verify:"$pin" expect:ok sign:sign:sha256:"$work/h256":"$work/s-r2" expect:ok) ||
    { echo "$out" >&2; fail "reset by another client"; }
  expect_match "$out" "^stats apdus=0 " "nothing sent to a card that lost its PIN state"
else
  echo "   (opensc-tool missing: skipped)"
fi

# watch_then EVENT CMD...: arms the backend's wait_event, runs CMD, prints the
# milliseconds between the moment just before CMD and the event.
watch_then() {
  local want=$1; shift
  rm -f "$work/ready"
  probe watch:"$want":5000:"$work/ready" expect:ok > "$work/event" &
  local watcher=$!
  poll 5000 test -e "$work/ready" || fail "watcher not ready"
  local t0; t0=$(date +%s%3N)
  "$@" >/dev/null
  wait $watcher || { cat "$work/event" >&2; fail "no '$want' event"; }
  local at; at=$(sed -n 's/^watch status=ok .*at=\([0-9]*\).*/\1/p' "$work/event")
  echo $(( at - t0 ))
}

step "wait_event: removal and insertion within 200 ms"
ms=$(watch_then removed cachet-sim-ctl card remove)
echo "   removal seen after $ms ms"
[ "$ms" -lt 200 ] || fail "removal seen after $ms ms"
out=$(probe bind)
expect_match "$out" "^bind status=(no-card|no-reader)" "bind without a card"
ms=$(watch_then inserted cachet-sim-ctl card insert "$CACHET_CARD_PROFILE")
echo "   insertion seen after $ms ms"
[ "$ms" -lt 200 ] || fail "insertion seen after $ms ms"
out=$(probe bind)
expect_match "$out" "^bind status=ok .*serial=$serial " "bind after insertion"

step "card pulled during a signature: card-removed within 1 s, not a hang"
cachet-sim-ctl card remove >/dev/null
CACHET_CARD_TIMING=1 cachet-sim-ctl card insert "$CACHET_CARD_PROFILE" >/dev/null
pcsc-probe wait-card present 5000 >/dev/null || fail "slow card not seen"
rm -f "$work/signing"
probe monitor-start bind expect:ok verify:"$pin" expect:ok touch:"$work/signing" \
  sign-loop:sign:sha256:"$work/h256":1000 monitor-wait:removed:2000 monitor-stop \
  > "$work/pull.out" 2>&1 &
signer=$!
poll 20000 test -e "$work/signing" || { kill $signer; cat "$work/pull.out" >&2; fail "signer not ready"; }
# Let at least one signature through, then pull the card while the next one runs.
before=$(sim_apdus)
poll 20000 sh -c "[ \$(cachet-sim-ctl status | sed -n 's/.*apdus=\([0-9]*\).*/\1/p') -ge $((before + 5)) ]" ||
  { kill $signer; fail "signatures did not start"; }
t0=$(now_ms)
cachet-sim-ctl card remove >/dev/null
deadline=$(( t0 + 3000 ))
while kill -0 $signer 2>/dev/null; do
  [ "$(now_ms)" -lt $deadline ] || { kill $signer; cat "$work/pull.out" >&2; fail "signer still waiting 3 s after removal"; }
  sleep 0.01
done
wait $signer || true
out=$(cat "$work/pull.out")
echo "$out" | grep -E '^(sign-loop|event)' | sed 's/^/   /'
expect_match "$out" "^sign-loop status=card-removed " "signature during removal"
at=$(sed -n 's/^sign-loop .* at=\([0-9]*\).*/\1/p' <<<"$out")
t_ms=$(( at - t0 ))
echo "   signer got card-removed after $t_ms ms"
[ "$t_ms" -lt 1000 ] || fail "card-removed after $t_ms ms"
expect_match "$out" "^monitor-wait status=ok event=removed" "the monitor thread saw the removal"
at=$(sed -n 's/^event removed at \([0-9]*\).*/\1/p' <<<"$out")
echo "   monitor thread saw the removal after $(( at - t0 )) ms"
[ $(( at - t0 )) -lt 200 ] || fail "monitor saw the removal after $(( at - t0 )) ms"
cachet-sim-ctl card insert "$CACHET_CARD_PROFILE" >/dev/null
pcsc-probe wait-card present 5000 >/dev/null || fail "card not back"

step "the reader leaves and comes back"
ms=$(watch_then reader-gone cachet-sim-ctl unplug)
echo "   reader gone seen after $ms ms"
out=$(probe bind)
expect_match "$out" "^bind status=no-reader" "bind without a reader"
ms=$(watch_then reader-added cachet-sim-ctl plug)
echo "   reader back seen after $ms ms"
pcsc-probe wait-card present 5000 >/dev/null || fail "card not seen after plug"
out=$(probe bind pin-status)
expect_match "$out" "^bind status=ok .*serial=$serial " "bind after plug"
echo "OK"
