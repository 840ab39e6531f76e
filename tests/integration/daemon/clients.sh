#!/usr/bin/env bash
# cachetd and its clients: two clients at once are both served (while a third
# stalls mid-frame); a client with another uid is refused by cachetd itself
# (SO_PEERCRED), not by the file system; an oversized frame (1 GiB announced)
# is refused without the daemon's memory growing; malformed JSON, a request
# before hello, an unknown method and bad parameters get clear errors and the
# connection goes on; a second cachetd refuses to start.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon_lib.sh"
cd "$work"
# The appliance asks to confirm each signature: a simulated holder presses OK.
holder_start

step "two clients at once, a third one stalled mid-frame"
HOLD_STOP=$work/hold.stop raw_exchange hold &
holder=$!
make_mail a.eml A
make_mail b.eml B
cachet --pin-fd 3 verify-pin 3<<<"$CACHET_CARD_PIN" > /dev/null || fail "verify-pin"
cachet sign-mail a.eml -o a.signed 2> a.err & pa=$!
cachet sign-mail b.eml -o b.signed 2> b.err & pb=$!
cachet whoami > who.out & pw=$!
wait $pa || fail "client A: $(cat a.err)"
wait $pb || fail "client B: $(cat b.err)"
wait $pw || fail "whoami beside them"
cachet verify-mail a.signed > /dev/null || fail "A's signature"
cachet verify-mail b.signed > /dev/null || fail "B's signature"
touch "$work/hold.stop"
wait $holder || fail "the stalled client was dropped early (frame timeout is 10 s)"

step "malformed requests: clear errors, the connection goes on"
out=$(raw_exchange malformed)
echo "$out" | sed 's/^/   /'
expect_match "$(sed -n 1p <<<"$out")" '"code": "bad-request"' "malformed JSON"
expect_match "$(sed -n 2p <<<"$out")" '"code": "bad-request".*hello' "request before hello"
expect_match "$(sed -n 3p <<<"$out")" '"result": \{"version": 1, "server": "cachetd' "hello after errors"
expect_match "$(sed -n 4p <<<"$out")" '"code": "unknown-method"' "unknown method"
expect_match "$(sed -n 5p <<<"$out")" '"code": "bad-input"' "sign-digest with a short hash"
expect_match "$(sed -n 6p <<<"$out")" '"result": \{"server"' "status still served"
expect_match "$(raw_exchange version)" '"code": "version"' "unknown protocol version"

step "oversized frame: refused, daemon memory unchanged"
rss0=$(vmrss_kb)
out=$(raw_exchange oversized)
rss1=$(vmrss_kb)
echo "   $out" | tr '\n' ' '; echo
echo "   VmRSS before $rss0 kB, after $rss1 kB"
[ -n "$rss0" ] && [ -n "$rss1" ] || fail "cannot read cachetd's VmRSS"
expect_match "$(sed -n 1p <<<"$out")" '"code": "too-large"' "oversized frame"
expect_match "$(sed -n 2p <<<"$out")" '^null$' "connection closed after an oversized frame"
[ $(( rss1 - rss0 )) -lt 4096 ] || fail "cachetd grew by $(( rss1 - rss0 )) kB"
cachet status > /dev/null || fail "cachetd no longer serves after an oversized frame"
[ "$(grep -c 'frame over' "$CACHETD_LOG")" = 1 ] || fail "not exactly one log line for the oversized frame"

step "another uid is refused by cachetd (SO_PEERCRED)"
command -v setpriv > /dev/null || skip "setpriv missing"
[ "$(id -u)" = 0 ] || skip "needs root to switch uid"
# Let uid 65534 reach the socket, so that the refusal can only come from cachetd.
sockdir=$(dirname "$CACHETD_SOCKET")
modes=$(stat -c '%a %n' "$CACHET_SIM_DIR" "$XDG_RUNTIME_DIR" "$sockdir" "$CACHETD_SOCKET")
chmod 0711 "$CACHET_SIM_DIR" "$XDG_RUNTIME_DIR" "$sockdir"
chmod 0666 "$CACHETD_SOCKET"
rc=0
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups -- "$(command -v cachet)" status 2>&1) || rc=$?
while read -r m f; do chmod "$m" "$f"; done <<<"$modes"
echo "   $out (exit $rc)"
[ $rc = 7 ] || fail "another uid: exit $rc (want 7)"
expect_match "$out" "Accès refusé par cachetd" "refusal message"
expect_match "$(cat "$CACHETD_LOG")" "denied: uid 65534" "refusal logged by cachetd"
cachet status > /dev/null || fail "own uid refused after the test"

step "a second cachetd refuses to start"
rc=0; cachetd --audit-log "$work/audit2.log" --log "$work/second.log" || rc=$?
[ $rc != 0 ] || fail "a second cachetd started"
expect_match "$(cat "$work/second.log")" "another cachetd" "second instance message"
echo "OK"
