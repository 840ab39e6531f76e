# Helpers for the `cachet sendmail` tests (e2e.sh, sendmail_faults.sh).
# Sourced after ../lib.sh and mail_lib.sh, inside scripts/lib/cachet-env
# (cachetd runs; the card is $CACHET_CARD_PROFILE).
[ -n "${CACHETD_PID:-}" ] || skip "cachetd is not running in this environment (not built?)"
command -v cachet >/dev/null || skip "cachet not built"
command -v jq >/dev/null || skip "jq missing"
. "$(dirname "${BASH_SOURCE[0]}")/../gate_lib.sh"

# A message from ADDR_FROM to ADDR_TO with SUBJECT; ATTACH_BYTES (optional) of
# a base64 attachment (an IHE_XDM.ZIP, as MSSanté's structured documents).
sm_make_mail() {
  local out=$1 from=$2 to=$3 subject=$4 attach=${5:-0}
  {
    printf 'From: Praticien <%s>\r\nTo: <%s>\r\nSubject: %s\r\n' "$from" "$to" "$subject"
    printf 'Date: %s\r\nMessage-ID: <%s.%s@cachet.test>\r\nMIME-Version: 1.0\r\n' \
      "$(LC_ALL=C date -R)" "$RANDOM" "$$"
    if [ "$attach" -gt 0 ]; then
      printf 'Content-Type: multipart/mixed; boundary="b-cachet"\r\n\r\n'
      printf -- '--b-cachet\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\nci-joint le dossier.\r\n'
      printf -- '--b-cachet\r\nContent-Type: application/zip; name="IHE_XDM.ZIP"\r\n'
      printf 'Content-Disposition: attachment; filename="IHE_XDM.ZIP"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
      head -c "$attach" /dev/urandom | base64 -w 76 | sed 's/$/\r/'
      printf -- '--b-cachet--\r\n'
    else
      printf 'Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\nvoici le compte rendu.\r\n.\r\n..point\r\nFin.\r\n'
    fi
  } > "$out"
}

# sm_read_summary: scrolls the confirm screen (key 8) to its end and prints
# the summary lines, continuation lines joined (docs/appliance.md "What the
# screen shows"; as in daemon/trust.sh).
sm_read_summary() {
  local prev="" cur lines=() i
  for i in $(seq 1 30); do
    cur=$(cachet-sim-ctl screen --json)
    [ "$(jq -r .screen <<<"$cur")" = confirm-signature ] || break
    [ "$cur" != "$prev" ] || break
    lines+=("$(jq -r '.lines[1]' <<<"$cur")")
    prev=$cur
    printf '%s' "$cur" > "$work/screen.now"
    cachet-sim-ctl key 8 >/dev/null
    poll 2000 sh -c "[ \"\$(cachet-sim-ctl screen --json)\" != \"\$(cat '$work/screen.now')\" ]" || true
  done
  lines+=("$(jq -r '.lines[2]' <<<"$prev")")
  printf '%s\n' "${lines[@]}" | awk 'NR > 1 && /^  / { printf "%s", substr($0, 3); next } NR > 1 { print "" } { printf "%s", $0 } END { print "" }'
}

# sm_confirm KEY OUT: waits for the confirm screen, saves its summary in OUT,
# presses KEY (ok, cancel).
sm_confirm() {
  wait_screen confirm-signature 30000 || fail "the appliance did not ask for confirmation"
  sm_read_summary > "$2"
  cachet-sim-ctl key "$1" >/dev/null
}

# The audit entries after sequence number N (JSON lines).
sm_audit_after() {
  cachet --json audit show -n 50 | jq -c --argjson n "$1" '.entries[] | select(.seq > $n)'
}
sm_audit_seq() {
  cachet --json audit show -n 1 | jq -r '.entries[-1].seq // 0'
}
