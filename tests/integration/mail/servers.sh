#!/usr/bin/env bash
# The test mail servers (mail_lib.sh) really demand what MSSanté's do:
# - Postfix submission: no STARTTLS → refused; STARTTLS without a client
#   certificate → refused; an untrusted certificate → refused; a trusted CPS
#   certificate may send only as its own address (the other practitioner's
#   address is rejected); a message from A to B lands in B's Maildir;
# - Dovecot IMAP: no client certificate → no login (EXTERNAL refused, LOGIN
#   disabled); an untrusted certificate → refused; B's certificate → B's INBOX.
# The clients here use the profiles' software keys (the card's own keys are
# exercised by imap_curl.sh and the sendmail tests); Python's smtplib/imaplib
# on OpenSSL, so every server reply is read before the next command.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/mail_lib.sh"
py=$(command -v python3 || true)
[ -n "$py" ] || skip "python3 missing"

mail_servers_start
a=cps-rpps b=cps-adeli
addr_a=$(mail_address $a) addr_b=$(mail_address $b)
pa=$CACHET_SIM_PKI/profiles/$a pb=$CACHET_SIM_PKI/profiles/$b
# An untrusted certificate with the very same subject as A's (self-signed).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/rogue.key" -out "$work/rogue.pem" -days 1 \
  -subj "$(openssl x509 -in "$pa/auth.crt.pem" -noout -subject -nameopt compat | sed 's/^subject=//')" \
  >/dev/null 2>&1 || fail "rogue certificate"

cat > "$work/client.py" <<'PY'
# client.py smtp|imap CERT|- KEY|- [FROM TO] : one session, prints what happened.
import imaplib, os, smtplib, ssl, sys
proto, cert, key = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=os.environ["MAIL_SERVER_CA"])
ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
if cert != "-":
    ctx.load_cert_chain(cert, key)
host = "127.0.0.1"
def out(*a):
    print(*a, flush=True)
try:
    if proto == "smtp-plain":
        s = smtplib.SMTP(host, int(os.environ["SMTP_PORT"]), timeout=20)
        s.ehlo("client.test")
        code, msg = s.mail(sys.argv[4])
        out("MAIL", code, msg.decode())
    elif proto == "smtp":
        s = smtplib.SMTP(host, int(os.environ["SMTP_PORT"]), timeout=20)
        s.ehlo("client.test")
        s.starttls(context=ctx)
        out("TLS", s.sock.version())
        s.ehlo("client.test")
        code, msg = s.mail(sys.argv[4])
        out("MAIL", code, msg.decode())
        if code == 250:
            code, msg = s.rcpt(sys.argv[5])
            out("RCPT", code, msg.decode())
            body = ("From: <%s>\r\nTo: <%s>\r\nSubject: servers.sh\r\n\r\nBonjour\r\n"
                    % (sys.argv[4], sys.argv[5]))
            code, msg = s.data(body)
            out("DATA", code, msg.decode())
        s.quit()
    elif proto == "imap":
        i = imaplib.IMAP4(host, int(os.environ["IMAP_PORT"]), timeout=20)
        out("CAPS", " ".join(i.capabilities))
        i.starttls(ssl_context=ctx)
        out("TLS", i.sock.version(), " ".join(i.capabilities))
        try:
            i.login("899700123456", "x")
            out("LOGIN accepted")
        except imaplib.IMAP4.error as e:
            out("LOGIN refused", e)
        typ, data = i.authenticate("EXTERNAL", lambda _: b"")
        out("AUTH", typ, data)
        typ, data = i.select("INBOX", readonly=True)
        out("SELECT", typ, data[0].decode())
        i.logout()
except (smtplib.SMTPException, imaplib.IMAP4.error, ssl.SSLError, OSError) as e:
    out("ERROR", type(e).__name__, e)
PY
client() { "$py" "$work/client.py" "$@" 2>&1; }

step "SMTP without STARTTLS: MAIL FROM refused"
out=$(client smtp-plain - - "$addr_a")
expect_match "$out" "^MAIL 530 .*STARTTLS" "MAIL FROM before STARTTLS"

step "SMTP STARTTLS without a client certificate: refused"
out=$(client smtp - - "$addr_a" "$addr_b")
expect_no_match "$out" "^MAIL 250" "no client certificate"
grep -q "abort: TLS from .*No client certificate presented" "$MAIL_POSTFIX_LOG" ||
  fail "Postfix did not refuse the session without a certificate: $(tail -n 5 "$MAIL_POSTFIX_LOG")"

step "SMTP with an untrusted certificate (A's subject, self-signed): refused"
out=$(client smtp "$work/rogue.pem" "$work/rogue.key" "$addr_a" "$addr_b")
expect_no_match "$out" "^MAIL 250" "untrusted certificate"
grep -q "abort: TLS from .*Client certificate not trusted" "$MAIL_POSTFIX_LOG" ||
  fail "Postfix did not refuse the untrusted certificate: $(tail -n 5 "$MAIL_POSTFIX_LOG")"

step "SMTP with A's certificate as B's address: rejected"
out=$(client smtp "$pa/auth.crt.pem" "$pa/auth.key.pem" "$addr_b" "$addr_b")
expect_match "$out" "^TLS TLSv1.2" "TLS 1.2"
expect_match "$out" "^MAIL 55[0-9] .*not bound to this client certificate" "sender bound to the certificate"

step "SMTP with a trusted CPS certificate bound to no address (cps-t1): rejected"
pt=$CACHET_SIM_PKI/profiles/cps-t1
if [ -f "$pt/auth.key.pem" ]; then
  out=$(client smtp "$pt/auth.crt.pem" "$pt/auth.key.pem" "$(mail_address cps-t1)" "$addr_b")
  expect_match "$out" "^MAIL 55[0-9]" "unbound certificate"
fi

step "SMTP with A's certificate as A: accepted, delivered to B's Maildir"
n0=$(mail_count "$addr_b")
out=$(client smtp "$pa/auth.crt.pem" "$pa/auth.key.pem" "$addr_a" "$addr_b")
expect_match "$out" "^MAIL 250" "A as A"
expect_match "$out" "^DATA 250" "message queued"
mail_wait "$addr_b" $((n0 + 1)) || fail "not delivered to $addr_b: $(tail -n 20 "$MAIL_POSTFIX_LOG")"
grep -q '^Subject: servers.sh' "$(mail_last "$addr_b")" || fail "delivered message"
grep -q "using TLSv1.2" "$(mail_last "$addr_b")" || fail "Received: header without TLS 1.2"
grep -q "Client CN \"$(mail_idnat $a)\".*verified OK" "$(mail_last "$addr_b")" ||
  fail "Received: header without A's verified certificate"

step "IMAP without a client certificate: no login"
out=$(client imap - - )
expect_match "$out" "^CAPS .*STARTTLS" "STARTTLS offered"
expect_match "$out" "^TLS TLSv1.2 .*AUTH=EXTERNAL" "EXTERNAL offered after STARTTLS"
expect_match "$out" "^LOGIN refused" "LOGIN"
expect_no_match "$out" "^AUTH OK" "EXTERNAL without a certificate"
expect_no_match "$out" "^SELECT OK" "SELECT without a certificate"

step "IMAP with an untrusted certificate: refused"
out=$(client imap "$work/rogue.pem" "$work/rogue.key")
expect_no_match "$out" "^AUTH OK" "untrusted certificate"

step "IMAP with B's certificate: B's INBOX"
out=$(client imap "$pb/auth.crt.pem" "$pb/auth.key.pem")
expect_match "$out" "^AUTH OK" "EXTERNAL with B's certificate"
expect_match "$out" "^SELECT OK $(mail_count "$addr_b")\$" "B's INBOX"
grep -q "user=<$(mail_idnat $b)>" "$MAIL_DOVECOT_LOG" || fail "Dovecot's user is not B's IdNat"

step "mail_servers_start --smtp-tls13-only: a TLS 1.2 client is refused"
mail_servers_stop
mail_servers_start --smtp-tls13-only
out=$(client smtp "$pa/auth.crt.pem" "$pa/auth.key.pem" "$addr_a" "$addr_b")
expect_no_match "$out" "^MAIL 250" "TLS 1.2 on a TLS 1.3-only server"
expect_match "$out" "^ERROR .*(VERSION|version|alert)" "TLS 1.2 on a TLS 1.3-only server"

echo "OK"
