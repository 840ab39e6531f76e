#!/usr/bin/env bash
# Secure PIN entry on the appliance's keypad, through unmodified OpenSC:
# - the reader announces a PIN pad (FEATURE_VERIFY/MODIFY_PIN_DIRECT): the
#   token has a protected authentication path ("PIN pad present");
# - `pkcs11-tool --login` WITHOUT --pin: the test reads the appliance's screen
#   (cachet-sim-ctl screen --json) until it asks for the PIN, types it with
#   cachet-sim-ctl key, and the login succeeds;
# - the virtual USB cable, captured during that login (cachet-sim --capture,
#   CACHET_SIM_CAPTURE), carries no PIN digit in any form;
# - a wrong PIN costs one try and the next PIN screen shows the tries left;
# - Cancel on the keypad fails the login cleanly and costs no try;
# - PIN change on the keypad (old, new, new again), login with the new PIN,
#   then back to the profile's PIN.
# With a PIN given (--pin) OpenSC still sends VERIFY itself (pkcs11 C_Login
# keeps the PIN when ulPinLen > 0): the other integration tests do that.
. "$(dirname "$0")/lib.sh"

[ -n "${CACHET_SIM_CAPTURE:-}" ] && [ -f "$CACHET_SIM_CAPTURE" ] ||
  fail "no USB capture (run with CACHET_SIM_CAPTURE=1)"
pin=$CACHET_CARD_PIN
new_pin=$(printf '%s' "$pin" | rev)
[ "$new_pin" != "$pin" ] || new_pin=5791

pin_status() { pcsc-probe apdu 00200001; }
screen() { cachet-sim-ctl screen --json; }

# wait_pin_screen TITLE: polls the display (deadline 20 s) until it asks for a
# PIN with TITLE on its first line and nothing typed yet.
wait_pin_screen() {
  local want="{\"screen\":\"pin-entry\",\"lines\":[\"$1\",\"\""
  local end=$(( $(now_ms) + 20000 )) s
  while :; do
    s=$(screen)
    case "$s" in "$want"*) printf '%s\n' "$s"; return 0 ;; esac
    [ "$(now_ms)" -lt $end ] || { printf 'screen: %s\n' "$s" >&2; return 1; }
    sleep 0.02
  done
}
type_keys() { for k in "$@"; do cachet-sim-ctl key "$k" >/dev/null || fail "key $k"; done; }
digits() { printf '%s' "$1" | sed 's/./& /g'; }

# p11 OUT ARGS...: pkcs11-tool in the background, its status in OUT.rc.
p11_bg() {
  local out=$1; shift
  ( r=0; pkcs11-tool --module "$OPENSC_PKCS11" "$@" > "$out" 2>&1 || r=$?; echo $r > "$out.rc" ) &
  bg_pid=$!
}
# p11_wait OUT: waits for it (not in a subshell: only the parent can wait).
p11_wait() { wait "$bg_pid" || true; rc=$(cat "$1.rc"); }

# no_pin_in_capture FROM PIN: the capture, from byte FROM on, must not hold
# PIN: host→device frames (SETUP, OUT) neither as ASCII, BCD nor hex text;
# device→host frames (SETUP_DONE, IN) not as ASCII digits standing alone
# (certificates hold digit runs such as the RPPS number) nor as BCD.
no_pin_in_capture() {
  perl -e '
    use strict; my ($file, $from, $pin) = @ARGV;
    open(my $f, "<:raw", $file) or die "capture: $!"; local $/; my $all = <$f>;
    my $cap = substr($all, $from);
    (my $bcd = $pin) =~ s/(\d)(\d)/chr(($1<<4)|$2)/ge; $bcd = substr($bcd, 0, int(length($pin)/2));
    my $hex = join("", map { sprintf("%02x", ord) } split //, $pin);
    my $hexsp = join(" ", map { sprintf("%02x", ord) } split //, $pin);
    my ($off, $frames, $secure, $bad) = (0, 0, 0, 0);
    while ($off + 8 <= length($cap)) {
      my ($kind, $ep, $st, $len) = unpack("C C n N", substr($cap, $off, 8));
      last if $off + 8 + $len > length($cap);
      my $p = substr($cap, $off + 8, $len);
      $off += 8 + $len; $frames++;
      if ($kind == 1 || $kind == 3) {
        $secure++ if $kind == 3 && $len > 10 && ord($p) == 0x69;
        for my $needle ($pin, $bcd, $hex, uc $hex, $hexsp, uc $hexsp) {
          if (index($p, $needle) >= 0 || index(lc $p, lc $needle) >= 0) { $bad++; print STDERR "PIN in a host frame (kind $kind)\n"; }
        }
      } else {
        if ($p =~ /(?<![0-9])\Q$pin\E(?![0-9])/) { $bad++; print STDERR "PIN in a device frame (kind $kind)\n"; }
        if ($len > 10 && index(substr($p, 10), $bcd) >= 0 && $kind == 4 && ord($p) == 0x80 && $len <= 14) {
          $bad++; print STDERR "PIN (BCD) in a short device answer\n";
        }
      }
    }
    print "frames=$frames secure=$secure\n";
    exit($bad ? 1 : ($frames > 0 && $secure > 0 ? 0 : 2));
  ' "$CACHET_SIM_CAPTURE" "$1" "$2"
}

step "the token has a protected authentication path"
out=$(pkcs11-tool --module "$OPENSC_PKCS11" -L 2>&1)
expect_match "$out" "token flags *:.*PIN pad present" "pkcs11-tool -L"
expect_match "$(opensc-tool -l 2>&1)" "PIN pad|Cachet CPS Appliance" "opensc-tool -l"
expect_match "$(pin_status)" "^63C3$" "initial PIN status"
expect_match "$(screen)" '^\{"screen":"idle","lines":\["Cachet",' "resting screen"

step "login with the PIN typed on the appliance; no PIN on the USB cable"
from=$(stat -c %s "$CACHET_SIM_CAPTURE")
p11_bg "$work/login.out" --login -O
wait_pin_screen "Code porteur :" >/dev/null || fail "no PIN screen for the login"
expect_match "$(screen)" '"3 essais restants"' "tries on the PIN screen"
type_keys $(digits "$pin") ok
p11_wait "$work/login.out"
[ "$rc" = 0 ] || { cat "$work/login.out" >&2; fail "login with the PIN typed on the keypad"; }
expect_match "$(cat "$work/login.out")" "Private Key Object" "objects after login"
expect_match "$(screen)" '"Code accepté"' "result screen"
no_pin_in_capture "$from" "$pin" || fail "the PIN crossed the USB cable (or no Secure command seen)"

step "a wrong PIN typed: one try spent, shown on the next PIN screen"
p11_bg "$work/wrong.out" --login -O
wait_pin_screen "Code porteur :" >/dev/null || fail "no PIN screen (wrong PIN)"
type_keys 9 9 9 9 ok
p11_wait "$work/wrong.out"
[ "$rc" != 0 ] || fail "login with a wrong PIN succeeded"
expect_match "$(cat "$work/wrong.out")" "CKR_PIN_INCORRECT" "wrong PIN"
expect_match "$(screen)" '"Code incorrect","2 essais restants"' "error screen"
expect_match "$(pin_status)" "^63C2$" "tries after a wrong PIN"
p11_bg "$work/retry.out" --login -O
s=$(wait_pin_screen "Code porteur :") || fail "no PIN screen (retry)"
expect_match "$s" '"2 essais restants"' "tries left on the next PIN screen"
type_keys $(digits "$pin") ok
p11_wait "$work/retry.out"
[ "$rc" = 0 ] || { cat "$work/retry.out" >&2; fail "login after a wrong PIN"; }

step "Cancel on the keypad: the login fails cleanly, no try spent"
before=$(pin_status)
p11_bg "$work/cancel.out" --login -O
wait_pin_screen "Code porteur :" >/dev/null || fail "no PIN screen (cancel)"
type_keys 1 2 cancel
p11_wait "$work/cancel.out"
[ "$rc" != 0 ] || fail "a cancelled login succeeded"
expect_match "$(cat "$work/cancel.out")" "CKR_FUNCTION_CANCELED" "cancelled login"
expect_match "$(screen)" '"Annulé"' "cancel screen"
expect_match "$(pin_status)" "^(9000|63C3)$" "tries after Cancel (was $before)"

step "PIN change on the keypad, login with the new PIN, and back"
change_on_keypad() { # OLD NEW
  p11_bg "$work/change.out" --change-pin
  wait_pin_screen "Code porteur :" >/dev/null || fail "no current-PIN screen"
  type_keys $(digits "$1") ok
  wait_pin_screen "Nouveau code :" >/dev/null || fail "no new-PIN screen"
  type_keys $(digits "$2") ok
  wait_pin_screen "Confirmez le code :" >/dev/null || fail "no confirmation screen"
  type_keys $(digits "$2") ok
  p11_wait "$work/change.out"
  [ "$rc" = 0 ] || { cat "$work/change.out" >&2; fail "PIN change $1 -> $2"; }
  expect_match "$(screen)" '"Code modifié"' "PIN changed screen"
}
change_on_keypad "$pin" "$new_pin"
p11_bg "$work/new.out" --login -O
wait_pin_screen "Code porteur :" >/dev/null || fail "no PIN screen (new PIN)"
type_keys $(digits "$new_pin") ok
p11_wait "$work/new.out"
[ "$rc" = 0 ] || { cat "$work/new.out" >&2; fail "login with the new PIN"; }
# the two new PINs differ: refused on the appliance, nothing changes
p11_bg "$work/mismatch.out" --change-pin
wait_pin_screen "Code porteur :" >/dev/null || fail "no current-PIN screen (mismatch)"
type_keys $(digits "$new_pin") ok
wait_pin_screen "Nouveau code :" >/dev/null || fail "no new-PIN screen (mismatch)"
type_keys 1 1 1 1 ok
wait_pin_screen "Confirmez le code :" >/dev/null || fail "no confirmation screen (mismatch)"
type_keys 2 2 2 2 ok
p11_wait "$work/mismatch.out"
[ "$rc" != 0 ] || fail "a PIN change with two different new PINs succeeded"
expect_match "$(screen)" '"Codes différents"' "mismatch screen"
change_on_keypad "$new_pin" "$pin"
no_pin_in_capture "$from" "$new_pin" >/dev/null || fail "the new PIN crossed the USB cable"
# A PIN given on the command line still works with a PIN pad reader; it then
# crosses the cable in VERIFY, which the capture check must see (its control).
from_cli=$(stat -c %s "$CACHET_SIM_CAPTURE")
pkcs11-tool --module "$OPENSC_PKCS11" --login --pin "$pin" -O > "$work/cli.out" 2>&1 ||
  { cat "$work/cli.out" >&2; fail "login with --pin"; }
rc=0; no_pin_in_capture "$from_cli" "$pin" >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "the capture check did not see the PIN sent with --pin (status $rc)"
echo "OK"
