# Helpers for the tests that go through the appliance's gate (firmware/gate):
# reading the display and answering the confirm screen. Sourced after lib.sh.

# screen_name: the name of the screen shown now.
screen_name() { cachet-sim-ctl screen --json | jq -r .screen; }
# screen_line N: line N (0..3) of the display.
screen_line() { cachet-sim-ctl screen --json | jq -r ".lines[$1]"; }
# screen_text: the four lines, one per line.
screen_text() { cachet-sim-ctl screen --json | jq -r '.lines[]'; }

# wait_screen NAME [MS]: until the display shows screen NAME (default 10 s).
wait_screen() {
  local name=$1 ms=${2:-10000}
  poll "$ms" sh -c "[ \"\$(cachet-sim-ctl screen --json | jq -r .screen)\" = '$name' ]"
}

# confirm_with KEY: waits for the confirm screen, then presses KEY (ok, cancel).
confirm_with() {
  wait_screen confirm-signature 20000 || fail "the appliance did not ask for confirmation"
  cachet-sim-ctl key "$1" >/dev/null
}

# card_cds_count: PSO COMPUTE DIGITAL SIGNATURE commands the card executed.
card_cds_count() { grep -c '^  C: 00 2A 9E 9A' "$CACHET_SIM_DIR/card.log" || true; }

# fingerprint_of HEX: what the confirm screen shows for a digest (5 bytes).
fingerprint_of() { echo "$1" | cut -c1-10 | sed 's/../& /g; s/ $//' | tr 'a-f' 'A-F'; }

# holder_start: a simulated holder who answers the confirm screen with OK for
# every signature until holder_stop (or the end of the test): for the tests
# that sign with the signature key but are not about the confirmation itself.
# Each OK is logged in $work/holder.log with the screen's fingerprint.
holder_start() {
  holder_stop_file=$work/holder.stop
  rm -f "$holder_stop_file"
  local parent=$$
  (
    end=$(( $(date +%s) + 280 ))
    while [ ! -e "$holder_stop_file" ] && kill -0 "$parent" 2>/dev/null &&
          [ "$(date +%s)" -lt $end ]; do
      s=$(cachet-sim-ctl screen --json 2>/dev/null) || break
      if [ "$(jq -r .screen <<<"$s")" = confirm-signature ]; then
        cachet-sim-ctl key ok >/dev/null 2>&1 || true
        jq -r '.lines[3]' <<<"$s" >> "$work/holder.log"
      fi
      sleep 0.02
    done
  ) &
  holder_pid=$!
}
holder_stop() {
  if [ -n "${holder_pid:-}" ]; then
    touch "$holder_stop_file"
    wait "$holder_pid" 2>/dev/null || true
    holder_pid=
  fi
}
