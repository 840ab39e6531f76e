#!/usr/bin/env bash
# Card removal as cachetd's clients see it: `cachet events --count 2` sees the
# removal and the insertion; pulling the card (abruptly: pull_card) while the
# card computes the signature gives that client a clear error (card removed,
# exit 4) within 1 s,
# the signed output is not written, and cachetd then serves the re-inserted card.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon_lib.sh"
cd "$work"
# The appliance asks to confirm each signature: a simulated holder presses OK.
holder_start

step "cachet events --count 2 sees card-removed then card-inserted"
cachet events --count 2 > events.out 2> events.err &
watcher=$!
poll 5000 grep -q "En attente" events.err || fail "events: no subscription"
cachet-sim-ctl card remove > /dev/null
cachet-sim-ctl card insert "$CACHET_CARD_PROFILE" > /dev/null
end=$(( $(now_ms) + 5000 ))
while kill -0 $watcher 2>/dev/null; do
  [ "$(now_ms)" -lt $end ] || { kill $watcher; fail "events did not end after 2 events"; }
  sleep 0.01
done
wait $watcher || fail "cachet events failed: $(cat events.err)"
cat events.out | sed 's/^/   /'
expect_match "$(sed -n 1p events.out)" "carte retirée \[card-removed\]" "first event"
expect_match "$(sed -n 2p events.out)" "carte insérée \[card-inserted\]" "second event"
cachet --json events --count 1 > ev.json 2> ev.err &
watcher=$!
poll 5000 grep -q subscribed ev.err || fail "events --json: no subscription"
cachet-sim-ctl card remove > /dev/null
wait $watcher || fail "events --json"
expect_match "$(cat ev.json)" '^\{"v":1,"event":"card-removed"' "JSON event line"
cachet-sim-ctl card insert "$CACHET_CARD_PROFILE" > /dev/null

step "removal during sign-mail (slow card): clear error within 1 s"
slow_card
cachet --pin-fd 3 verify-pin 3<<<"$CACHET_CARD_PIN" > /dev/null || fail "verify-pin on the slow card"
make_mail msg.eml 1
signing=$(grep -c "signing with the sign key" "$CACHETD_LOG" || true)
rc_file=$work/rc
( rc=0; cachet sign-mail msg.eml -o signed.eml 2> sign.err || rc=$?; echo $rc > "$rc_file" ) &
signer=$!
# Pull the card once cachetd has started the signature (on the slow card the
# SELECT, MSE SET DST and PSO CDS then take about 2 s).
poll 10000 sh -c "[ \$(grep -c 'signing with the sign key' '$CACHETD_LOG') -gt $signing ]" ||
  fail "the signature did not start"
t0=$(now_ms)
pull_card
deadline=$(( t0 + 3000 ))
while [ ! -s "$rc_file" ]; do
  [ "$(now_ms)" -lt $deadline ] || fail "sign-mail still waiting 3 s after the removal"
  sleep 0.01
done
ms=$(( $(now_ms) - t0 ))
wait $signer
rc=$(cat "$rc_file")
echo "   sign-mail ended after $ms ms with exit $rc: $(cat sign.err)"
[ "$rc" = 4 ] || fail "sign-mail after removal: exit $rc (want 4)"
expect_match "$(cat sign.err)" "La carte a été retirée" "card-removed message"
[ $ms -lt 1000 ] || fail "the error came $ms ms after the removal (want < 1 s)"
[ ! -e signed.eml ] || fail "an output was written although the signature failed"
expect_match "$(cachet audit show -n 1)" "sign-mail +sign +card-removed" "audited as card-removed"

step "the card back: served again, PIN needed again (login state dropped)"
cachet-sim-ctl card insert "$CACHET_CARD_PROFILE" > /dev/null
poll 5000 cachet whoami || fail "whoami after re-insertion"
expect_match "$(cachet status)" "non vérifié" "PIN state dropped with the card"
cachet --pin-fd 3 sign-mail msg.eml -o signed.eml 3<<<"$CACHET_CARD_PIN" 2>/dev/null || fail "sign-mail after re-insertion"
cachet verify-mail signed.eml > /dev/null || fail "signature after re-insertion"
echo "OK"
