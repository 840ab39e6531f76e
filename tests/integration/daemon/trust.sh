#!/usr/bin/env bash
# cachetd's side of the appliance's trust features (issue 5, docs/appliance.md):
#  - `cachet device` pins the device key on first use (0600), then finds it again;
#  - `cachet sign-mail`: cachetd announces the message, the confirm screen shows
#    its From/To/Subject and attachment as the appliance lays them out, and the
#    fingerprint of what is signed; OK → the output verifies (openssl smime,
#    cachet verify-mail), the audit entry holds the receipt;
#  - Cancel → exit 6 and a clear message, nothing written, audit "cancelled";
#    no answer within the appliance's time-out → exit 6 "timeout";
#  - sign-digest with the signature key (a PKCS#11 client's request) is shown
#    unannounced, and receipted;
#  - `cachet audit verify` checks every receipt with the pinned key; a tampered
#    receipt or content digest fails even in a log whose hash chain was redone;
#  - a changed device key is reported loudly (CLI, log, receipts), never
#    accepted, until `cachet device --repin`;
#  - verify-pin typed on the PIN pad through cachetd (pin-needed event, no
#    terminal prompt);
#  - the appliance's language comes from cachetd's configuration (fr, en).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon_lib.sh"
command -v xxd >/dev/null || skip "xxd missing"
cd "$work"
pin_file=$(dirname "$CACHETD_AUDIT_LOG")/device.pin

# A message with an attachment and two recipients.
mail_with_attachment() {
  local from; from=$(profile_value email)
  {
    printf 'From: Dr Test <%s>\r\nTo: Claire Martin <claire.martin@kine.mssante.fr>\r\n' "$from"
    printf 'Cc: secretariat@clinique.mssante.fr\r\nSubject: Compte rendu %s\r\n' "$2"
    printf 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    printf -- '--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\n'
    printf 'ci-joint le compte rendu.\r\n--b1\r\nContent-Type: application/pdf\r\n'
    printf 'Content-Disposition: attachment; filename="cr.pdf"\r\n'
    printf 'Content-Transfer-Encoding: base64\r\n\r\n'
    head -c 3000 /dev/urandom | base64 -w 76 | sed 's/$/\r/'
    printf -- '--b1--\r\n'
  } > "$1"
}

# read_summary: scrolls the confirm screen (key 8) to its end and prints the
# summary lines, continuation lines joined (docs/appliance.md "What the screen
# shows"); leaves the screen scrolled.
read_summary() {
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

last_entry() { tail -n 1 "$CACHETD_AUDIT_LOG"; }

step "cachet device: the device key, pinned on first use (0600), then found again"
rm -f "$pin_file"
out=$(cachet device) || fail "cachet device: $out"
echo "$out" | sed 's/^/   /'
expect_match "$out" "Clé d'appareil \(SHA-256\) : [0-9a-f]{64}" "fingerprint"
expect_match "$out" "enregistrée \(première utilisation\)" "pinned on first use"
[ "$(stat -c %a "$pin_file")" = 600 ] || fail "pin file mode $(stat -c %a "$pin_file")"
fpr=$(cachet --json device | jq -r .fingerprint)
expect_match "$(cachet device)" "conforme à la clé enregistrée" "second look: the pinned key"
gate-probe run "info:$work/device.der" > /dev/null || fail "gate-probe info"
[ "$(openssl dgst -sha256 -r "$work/device.der" | cut -c1-64)" = "$fpr" ] ||
  fail "the fingerprint is not SHA-256 of the appliance's SubjectPublicKeyInfo"

step "the appliance speaks French (cachetd's default language)"
expect_match "$(gate-probe run status)" "^status [0-9A-F]{2} [0-9]+ [0-9]+ [0-9]+ [0-9]+ 0$" "language 0"

step "sign-mail: announced, the confirm screen shows the summary; OK → signed"
cachet --pin-fd 3 verify-pin 3<<<"$CACHET_CARD_PIN" > /dev/null || fail "verify-pin"
mail_with_attachment msg.eml 1
rc_file=$work/rc
( rc=0; cachet sign-mail msg.eml -o signed.eml 2> sign.err || rc=$?; echo $rc > "$rc_file" ) &
signer=$!
wait_screen confirm-signature 20000 || fail "no confirm screen (now: $(screen_name); $(cat sign.err))"
expect_match "$(screen_line 0)" "^Signer \?$" "announced: title"
shown_fpr=$(screen_line 3)
summary=$(read_summary)
echo "$summary" | sed 's/^/   | /'
from=$(profile_value email)
expect_match "$summary" "^De : Dr Test <$from>$" "From on the screen"
expect_match "$summary" "^À : Claire Martin <claire\.martin@kine\.mssante\.fr>$" "To on the screen"
expect_match "$summary" "^À : secretariat@clinique\.mssante\.fr$" "Cc on the screen"
expect_match "$summary" "^Objet : Compte rendu 1$" "Subject on the screen"
expect_match "$summary" "^PJ : cr\.pdf \(3 Ko\)$" "attachment on the screen"
expect_match "$summary" "^Contenu : [0-9A-F]{2}( [0-9A-F]{2}){3}$" "content digest on the screen"
[ ! -e signed.eml ] || fail "output written before the holder confirmed"
cachet-sim-ctl key ok > /dev/null
wait $signer
[ "$(cat "$rc_file")" = 0 ] || fail "sign-mail: exit $(cat "$rc_file"): $(cat sign.err)"
expect_match "$(cat sign.err)" "Confirmé sur le boîtier Cachet : reçu n° [0-9]+" "receipt number"
openssl smime -verify -CAfile "$CACHET_SIM_PKI/roots.pem" -in signed.eml -out content.txt 2> ossl.err ||
  { cat ossl.err >&2; fail "openssl smime -verify"; }
expect_match "$(cat content.txt)" "ci-joint le compte rendu" "signed content"
expect_match "$(cachet verify-mail signed.eml)" "Signature valide" "cachet verify-mail"
entry=$(last_entry)
[ "$(jq -r .operation <<<"$entry")" = sign-mail ] || fail "last entry: $entry"
[ "$(jq -r .announced <<<"$entry")" = true ] || fail "not announced: $entry"
sd=$(jq -r .signed_digest <<<"$entry")
[ "$(jq -r .receipt.digest <<<"$entry")" = "$sd" ] || fail "receipt digest != signed digest"
[ "$(jq -r .receipt.flags <<<"$entry")" = 3 ] || fail "receipt flags: announced and checked"
[ "$(jq -r .receipt.verified <<<"$entry")" = true ] || fail "receipt not verified"
[ "$(jq -r .receipt.device_key <<<"$entry")" = "$fpr" ] || fail "receipt from another key"
[ "$shown_fpr" = "$(fingerprint_of "$sd")" ] ||
  fail "the screen showed $shown_fpr, the signature is over $sd"
# What the screen showed as the content digest is the entry's.
cd_hex=$(jq -r .digest <<<"$entry" | cut -c1-8 | sed 's/../& /g; s/ $//' | tr 'a-f' 'A-F')
expect_match "$summary" "^Contenu : $cd_hex" "content digest = the entry's"
# The signature in the message is over the signedAttrs cachetd announced.
jq -r .signed_attrs <<<"$entry" | base64 -d > sattrs.der
[ "$(openssl dgst -sha256 -r sattrs.der | cut -c1-64)" = "$sd" ] || fail "signedAttrs in the audit"

step "Cancel on the appliance: exit 6, a clear message, nothing written, audited"
mail_with_attachment msg2.eml 2
( rc=0; cachet sign-mail msg2.eml -o signed2.eml 2> cancel.err || rc=$?; echo $rc > "$rc_file" ) &
signer=$!
confirm_with cancel
wait $signer
rc=$(cat "$rc_file")
echo "   exit $rc: $(cat cancel.err)"
[ "$rc" = 6 ] || fail "cancelled sign-mail: exit $rc (want 6)"
expect_match "$(cat cancel.err)" "refusée sur le boîtier Cachet.*rien n'a été signé" "cancel message"
[ ! -e signed2.eml ] || fail "output written although cancelled"
expect_match "$(cachet audit show -n 1)" "sign-mail +sign +cancelled" "audited as cancelled"
[ "$(jq -r .receipt <<<"$(last_entry)")" = null ] || fail "a receipt for a cancelled signature"

step "no answer within the appliance's time-out (5 s here): exit 6, timeout"
expect_match "$(gate-probe run config:timeout=5)" "^config 00$" "SET_CONFIG timeout"
( rc=0; cachet --json sign-mail msg2.eml -o signed2.eml > to.json 2> to.err || rc=$?; echo $rc > "$rc_file" ) &
signer=$!
wait_screen confirm-signature 20000 || fail "no confirm screen"
poll 15000 test -s "$rc_file" || fail "sign-mail still waiting 15 s after the confirm screen"
wait $signer
expect_match "$(gate-probe run config:timeout=60)" "^config 00$" "SET_CONFIG timeout back"
[ "$(cat "$rc_file")" = 6 ] || fail "timed-out sign-mail: exit $(cat "$rc_file")"
expect_match "$(cat to.json)" '"code": "timeout"' "timeout code"
[ ! -e signed2.eml ] || fail "output written although timed out"

step "sign-digest with the signature key (PKCS#11 client): shown unannounced, receipted"
h=$(printf 'autre document' | openssl dgst -sha256 -r | cut -c1-64)
python3 - "$CACHETD_SOCKET" "$h" > digest.json 2> digest.err <<'PY' &
import base64, json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(sys.argv[1])
def send(o):
    d = json.dumps(o).encode()
    s.sendall(struct.pack(">I", len(d)) + d)
def recv():
    h = b""
    while len(h) < 4:
        h += s.recv(4 - len(h))
    n = struct.unpack(">I", h)[0]
    b = b""
    while len(b) < n:
        b += s.recv(n - len(b))
    return json.loads(b)
send({"v": 1, "id": 1, "method": "hello", "params": {"versions": [1], "client": "trust.sh"}})
recv()
send({"v": 1, "id": 2, "method": "sign-digest", "params": {"key": "sign", "mechanism": "sha256",
      "data": base64.b64encode(bytes.fromhex(sys.argv[2])).decode()}})
print(json.dumps(recv()))
PY
client=$!
wait_screen confirm-signature 20000 || fail "no confirm screen for sign-digest"
expect_match "$(screen_line 0)" "non annoncée" "unannounced title"
expect_match "$(screen_line 3)" "^$(fingerprint_of "$h")$" "fingerprint of the digest"
cachet-sim-ctl key ok > /dev/null
wait $client || fail "sign-digest client: $(cat digest.err)"
expect_match "$(cat digest.json)" '"signature"' "sign-digest result"
entry=$(last_entry)
[ "$(jq -r .signed_digest <<<"$entry")" = "$h" ] || fail "signed_digest: $entry"
[ "$(jq -r .receipt.flags <<<"$entry")" = 0 ] || fail "unannounced receipt flags"
[ "$(jq -r .receipt.verified <<<"$entry")" = true ] || fail "unannounced receipt not verified"

step "cachet audit verify: the chain and every receipt, with the pinned key"
out=$(cachet audit verify) || fail "audit verify: $out"
echo "$out" | sed 's/^/   /'
expect_match "$out" "Journal d'audit intègre" "chain"
expect_match "$out" "Reçus du boîtier : 2 vérifié\(s\)" "receipts"
out=$(cachet audit verify --log "$CACHETD_AUDIT_LOG") || fail "offline audit verify: $out"
expect_match "$out" "Reçus du boîtier : 2 vérifié\(s\)" "offline receipts (pin beside the log)"

# rechain LOG: recomputes every "prev" and the head, as someone able to rewrite
# the whole log would: only the receipts can then tell.
rechain() {
  python3 - "$1" <<'PY'
import hashlib, json, sys
path = sys.argv[1]
lines = open(path, "rb").read().split(b"\n")[:-1]
out, prev = [], "0" * 64
for l in lines:
    o = json.loads(l)
    o["prev"] = prev
    b = json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode()
    out.append(b)
    prev = hashlib.sha256(b).hexdigest()
open(path, "wb").write(b"\n".join(out) + b"\n")
open(path + ".head", "w").write(json.dumps({"seq": len(out), "hash": prev}, separators=(",", ":")) + "\n")
PY
}
# tamper LOG JQ-FILTER: applies the filter to the last receipt-carrying sign-mail entry.
tamper() {
  python3 - "$1" "$2" <<'PY'
import base64, json, sys
path, what = sys.argv[1], sys.argv[2]
lines = open(path, "rb").read().split(b"\n")[:-1]
objs = [json.loads(l) for l in lines]
i = max(k for k, o in enumerate(objs) if o.get("operation") == "sign-mail" and "receipt" in o)
o = objs[i]
if what == "receipt-key":
    d = bytearray(base64.b64decode(o["receipt"]["data"]))
    d[5] = 0x82  # the receipt now says: authentication key
    o["receipt"]["data"] = base64.b64encode(bytes(d)).decode()
    o["receipt"]["key"] = "auth"
elif what == "content-digest":
    o["digest"] = "00" * 32
open(path, "wb").write(b"\n".join(json.dumps(x, separators=(",", ":"), ensure_ascii=False).encode() for x in objs) + b"\n")
PY
  rechain "$1"
}
mkdir copy
cp "$CACHETD_AUDIT_LOG" copy/audit.log
cp "$pin_file" copy/device.pin
rechain copy/audit.log
cachet audit verify --log copy/audit.log > /dev/null || fail "a re-chained but unchanged copy fails"
cp "$CACHETD_AUDIT_LOG" copy/audit.log
tamper copy/audit.log receipt-key
rc=0; out=$(cachet audit verify --log copy/audit.log) || rc=$?
echo "$out" | sed 's/^/   /'
[ $rc = 1 ] || fail "a tampered receipt verifies (exit $rc)"
expect_match "$out" "Journal d'audit intègre" "the chain alone cannot tell"
expect_match "$out" "Reçu du boîtier INVALIDE \(ligne [0-9]+\) : .*signature does not verify" "receipt signature"
cp "$CACHETD_AUDIT_LOG" copy/audit.log
tamper copy/audit.log content-digest
rc=0; out=$(cachet audit verify --log copy/audit.log) || rc=$?
[ $rc = 1 ] || fail "an entry with another content digest verifies (exit $rc)"
expect_match "$out" "content digest is not the messageDigest" "content digest vs receipt"
# Through cachetd: the same tampering of its own log (then the original back).
cp "$CACHETD_AUDIT_LOG" orig.log; cp "$CACHETD_AUDIT_LOG.head" orig.head
cp copy/audit.log "$CACHETD_AUDIT_LOG"; cp copy/audit.log.head "$CACHETD_AUDIT_LOG.head"
rc=0; out=$(cachet audit verify) || rc=$?
cp orig.log "$CACHETD_AUDIT_LOG"; cp orig.head "$CACHETD_AUDIT_LOG.head"
[ $rc = 1 ] || fail "cachetd: a tampered log verifies (exit $rc)"
expect_match "$out" "Reçu du boîtier INVALIDE" "cachetd's receipt check"
cachet audit verify > /dev/null || fail "the original log back does not verify"

step "another device key pinned: reported loudly, never accepted, until --repin"
cp "$pin_file" pin.orig
openssl ecparam -name prime256v1 -genkey -noout -out other.key 2>/dev/null
openssl ec -in other.key -pubout -outform DER -out other.der 2>/dev/null
python3 - other.der "$pin_file" <<'PY'
import base64, hashlib, json, sys
d = open(sys.argv[1], "rb").read()
json.dump({"version": 1, "spki": base64.b64encode(d).decode(), "sha256": hashlib.sha256(d).hexdigest(),
           "pinned": "2026-01-01T00:00:00Z"}, open(sys.argv[2], "w"))
PY
chmod 600 "$pin_file"
rc=0; out=$(cachet device 2>&1) || rc=$?
echo "$out" | sed 's/^/   /'
[ $rc = 1 ] || fail "a changed device key: exit $rc (want 1)"
expect_match "$out" "LA CLÉ DE CE BOÎTIER A CHANGÉ" "CLI warning"
expect_match "$(cachet --json device)" '"status": "mismatch"' "status field"
expect_match "$(cat "$CACHETD_LOG")" "DEVICE KEY CHANGED" "cachetd's log"
cmp -s "$pin_file" pin.orig && fail "the pin was replaced"
rc=0; out=$(cachet audit verify) || rc=$?
[ $rc = 1 ] || fail "receipts verify with another pinned key (exit $rc)"
make_mail msg3.eml 3
( rc=0; cachet sign-mail msg3.eml -o signed3.eml 2> s3.err || rc=$?; echo $rc > "$rc_file" ) &
signer=$!
confirm_with ok
wait $signer
[ "$(cat "$rc_file")" = 0 ] || fail "sign-mail with a changed device key: $(cat s3.err)"
expect_match "$(cat s3.err)" "ne vient pas du boîtier enregistré" "receipt of an unknown key reported"
[ "$(jq -r .receipt.device_key_status <<<"$(last_entry)")" = mismatch ] || fail "entry's key status"
out=$(cachet device --repin) || fail "repin: $out"
expect_match "$out" "Nouvelle clé d'appareil enregistrée" "repinned"
expect_match "$(cachet device)" "conforme" "the appliance's key again"
cachet audit verify > /dev/null || fail "receipts after the repin"

step "verify-pin on the PIN pad through cachetd (no terminal prompt)"
cachet-sim-ctl card remove > /dev/null
cachet-sim-ctl card insert "$CACHET_CARD_PROFILE" > /dev/null
poll 10000 cachet whoami || fail "card not back"
cachet --json events --count 1 > ev.json 2> ev.err &
watcher=$!
poll 5000 grep -q subscribed ev.err || fail "events: no subscription"
( rc=0; cachet verify-pin < /dev/null > vp.out 2> vp.err || rc=$?; echo $rc > "$rc_file" ) &
verifier=$!
wait_screen pin-entry 20000 || fail "no PIN entry screen (now: $(screen_name); $(cat vp.err))"
for d in $(grep -o . <<<"$CACHET_CARD_PIN"); do cachet-sim-ctl key "$d" > /dev/null; done
cachet-sim-ctl key ok > /dev/null
wait $verifier
wait $watcher || true
[ "$(cat "$rc_file")" = 0 ] || fail "verify-pin on the PIN pad: exit $(cat "$rc_file"): $(cat vp.err)"
expect_match "$(cat vp.err)" "^Tapez votre code porteur sur le boîtier Cachet\.$" "CLI message"
expect_match "$(cat vp.out)" "Code porteur vérifié" "verified"
expect_match "$(cat ev.json)" '"event":"pin-needed".*"pinpad":true' "pin-needed event, pinpad"
expect_match "$(cachet status)" "Code porteur  : vérifié" "status after the PIN pad"

step "the appliance's language from cachetd's configuration: en"
kill "$CACHETD_PID"
# (not our child: wait until it is gone, its audit log lock with it)
poll 20000 sh -c "! kill -0 $CACHETD_PID" || fail "cachetd does not stop"
cachetd --trust "$CACHET_SIM_PKI/roots.pem" --audit-log "$CACHETD_AUDIT_LOG" \
  --cache-dir "$CACHET_SIM_DIR/cache/cachet" --log "$work/cachetd-en.log" --language en &
new=$!
trap 'kill $new 2>/dev/null || true' EXIT
poll 10000 cachet whoami || fail "cachetd --language en does not answer ($(cat "$work/cachetd-en.log"))"
poll 5000 sh -c "gate-probe run status | grep -Eq ' 1\$'" || fail "language not set: $(gate-probe run status)"
make_mail msg4.eml 4
cachet --pin-fd 3 verify-pin 3<<<"$CACHET_CARD_PIN" > /dev/null || fail "verify-pin (en)"
( rc=0; cachet sign-mail msg4.eml -o signed4.eml 2> s4.err || rc=$?; echo $rc > "$rc_file" ) &
signer=$!
wait_screen confirm-signature 20000 || fail "no confirm screen"
expect_match "$(screen_line 1)" "^From: " "English summary"
cachet-sim-ctl key ok > /dev/null
wait $signer
[ "$(cat "$rc_file")" = 0 ] || fail "sign-mail with the English appliance: $(cat s4.err)"
kill $new; wait $new 2>/dev/null || true
echo "OK"
