#!/usr/bin/env bash
# `cachet sendmail` when things go wrong, against real Postfix (mail_lib.sh):
# Cancel on the appliance, a From that is not the card's address, a server
# that does not trust the card's certificate, a TLS 1.3-only server, the card
# removed during the submission. Each time: a clear error and its sysexits
# code, nothing delivered, and an audit line saying what happened where the
# card was used.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/mail_lib.sh"
. "$(dirname "$0")/sendmail_lib.sh"
cd "$work"
[ "$CACHET_CARD_PROFILE" = cps-rpps ] || skip "runs with the cps-rpps card"
mail_servers_start
A=$(mail_address cps-rpps)
B=$(mail_address cps-adeli)
export CACHET_SUBMISSION="$SMTP_HOST:$SMTP_PORT" CACHET_SUBMISSION_CA="$MAIL_SERVER_CA"
cachet --pin-fd 3 verify-pin 3<<<"$CACHET_CARD_PIN" >/dev/null || fail "verify-pin"
last_audit() { tail -n 1 "$CACHETD_AUDIT_LOG"; }
audit_lines() { wc -l < "$CACHETD_AUDIT_LOG"; }
nothing_delivered() { [ "$(mail_count "$B")" = 0 ] || fail "$1: something was delivered to $B"; }
sm_make_mail msg.eml "$A" "$B" "Compte rendu fautes"

step "Cancel on the appliance: exit 77, nothing sent, audit says cancelled"
cachet sendmail -t < msg.eml 2> cancel.err &
pid=$!
sm_confirm cancel cancel.screen
rc=0; wait "$pid" || rc=$?
[ $rc = 77 ] || fail "Cancel: exit $rc (want 77): $(cat cancel.err)"
expect_match "$(cat cancel.err)" "refusée sur le boîtier Cachet : rien n'a été envoyé" "Cancel message"
jq -e '.operation == "sign-mail" and .result == "cancelled"' <<<"$(last_audit)" >/dev/null ||
  fail "audit after Cancel: $(last_audit)"
nothing_delivered Cancel

step "From is not the card's address: refused before signing (exit 77)"
sm_make_mail other.eml "someone.else@medecin.mssante.fr" "$B" "Usurpation"
n0=$(audit_lines)
rc=0; cachet sendmail -t < other.eml 2> from.err || rc=$?
[ $rc = 77 ] || fail "wrong From: exit $rc (want 77): $(cat from.err)"
expect_match "$(cat from.err)" "l'expéditeur n'est pas l'adresse de la carte CPS" "wrong From message"
rc=0; cachet sendmail -f "$B" "$B" < msg.eml 2> envfrom.err || rc=$?
[ $rc = 77 ] || fail "wrong -f: exit $rc (want 77): $(cat envfrom.err)"
[ "$(audit_lines)" = "$n0" ] || fail "the card was used for a refused sender"
nothing_delivered "wrong From"

step "the server refuses the card's certificate (untrusted CA): exit 69, nothing sent"
holder_start
postconf -c "$MAIL_POSTFIX_CONF" -e "smtpd_tls_CAfile = $MAIL_SERVER_CA" ||
  fail "postconf"
r0=$(grep -c 'reload' "$MAIL_POSTFIX_LOG" || true)
postfix -c "$MAIL_POSTFIX_CONF" reload >/dev/null 2>&1 || fail "postfix reload"
poll 20000 sh -c "[ \$(grep -c reload '$MAIL_POSTFIX_LOG') -gt $r0 ]" || fail "postfix did not reload"
n0=$(audit_lines)
rc=0; cachet sendmail -t < msg.eml 2> untrusted.err || rc=$?
[ $rc = 69 ] || fail "untrusted client certificate: exit $rc (want 69): $(cat untrusted.err)"
expect_match "$(cat untrusted.err)" "certificat de la carte refusé par le serveur" "refused certificate message"
tail -n +"$((n0 + 1))" "$CACHETD_AUDIT_LOG" > untrusted.audit
jq -e -s 'map(select(.operation == "sign-mail" and .result == "ok")) | length == 1' untrusted.audit \
  >/dev/null || fail "audit: the signature is not there: $(cat untrusted.audit)"
nothing_delivered "untrusted certificate"
postconf -c "$MAIL_POSTFIX_CONF" -e "smtpd_tls_CAfile = $MAIL_CLIENT_CA" || fail "postconf"

step "a TLS 1.3-only server: exit 69, TLS 1.2 named in the error, nothing signed for TLS"
mail_servers_stop
mail_servers_start --smtp-tls13-only
export CACHET_SUBMISSION="$SMTP_HOST:$SMTP_PORT" CACHET_SUBMISSION_CA="$MAIL_SERVER_CA"
rc=0; cachet sendmail -t < msg.eml 2> tls13.err || rc=$?
[ $rc = 69 ] || fail "TLS 1.3-only server: exit $rc (want 69): $(cat tls13.err)"
expect_match "$(cat tls13.err)" "TLS 1.2" "TLS 1.3 message"
nothing_delivered "TLS 1.3-only"
mail_servers_stop
mail_servers_start
export CACHET_SUBMISSION="$SMTP_HOST:$SMTP_PORT" CACHET_SUBMISSION_CA="$MAIL_SERVER_CA"

step "a recipient the server does not know: exit 67, no DATA"
rc=0; cachet sendmail "nobody@medecin.mssante.fr" < msg.eml 2> rcpt.err || rc=$?
[ $rc = 67 ] || [ $rc = 77 ] || fail "unknown recipient: exit $rc: $(cat rcpt.err)"
expect_match "$(cat rcpt.err)" "refusé" "recipient refused message"
nothing_delivered "unknown recipient"

step "the card removed during the submission: exit 69, nothing sent, audit line"
holder_stop
# A slow card (1.5 s per private-key operation) so that the hand is in time.
pki="$work/pki-slow" p=cps-rpps
mkdir -p "$pki/profiles"
cp -r "$(profile_dir)" "$pki/profiles/$p"
sed -i '/^timing_compute_/d' "$pki/profiles/$p/profile.conf"
printf 'timing_compute_rsa_ms = 1500\ntiming_compute_other_ms = 200\n' >> "$pki/profiles/$p/profile.conf"
cachet-sim-ctl card remove >/dev/null
CACHET_SIM_PKI="$pki" CACHET_CARD_TIMING=1 cachet-sim-ctl card insert "$p" >/dev/null
poll 20000 cachet whoami >/dev/null 2>&1 || fail "cachetd did not bind the slow card"
n0=$(audit_lines)
cachet --pin-fd 3 sendmail -t < msg.eml 2> removed.err 3<<<"$CACHET_CARD_PIN" &
pid=$!
sm_confirm ok removed.screen
# the signature is done (its audit line is written before the answer): the
# TLS login with the authentication key comes next; pull the card now.
poll 20000 sh -c "tail -n +$((n0 + 1)) '$CACHETD_AUDIT_LOG' | grep -q '\"operation\":\"sign-mail\"'" ||
  fail "no sign-mail audit line"
cachet-sim-ctl card remove >/dev/null
rc=0; wait "$pid" || rc=$?
[ $rc = 69 ] || fail "card removed: exit $rc (want 69): $(cat removed.err)"
expect_match "$(cat removed.err)" "carte CPS absente ou retirée" "card removed message"
jq -e '.operation == "sign-digest" and .key == "auth" and (.result == "card-removed" or .result == "no-card")' \
  <<<"$(last_audit)" >/dev/null || fail "audit after removal: $(last_audit)"
nothing_delivered "card removed"
echo "OK"
