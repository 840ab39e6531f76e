#!/usr/bin/env bash
# IMAP login with the card by a real client: Debian's curl (OpenSSL) with
# libp11's engine on libcachet-pkcs11, against the test Dovecot (mail_lib.sh):
# STARTTLS, TLS 1.2, the card's authentication key signs the handshake, SASL
# EXTERNAL (the certificate is the only credential), Dovecot takes the user
# name (IdNat) from the certificate. Run with B's card in the slot (PROFILE
# cps-adeli): A (cps-rpps) first sends B a message through Postfix with curl and
# A's software key from the test PKI; then B lists and fetches the INBOX with
# the card. With TLS 1.3 the card cannot log in (RSA-PSS only, RFC 8446
# §4.2.3; docs/mssante-clients.md).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../pkcs11/p11lib.sh"
. "$(dirname "$0")/mail_lib.sh"
engine=$(ls /usr/lib/*/engines-3/pkcs11.so 2>/dev/null | head -n1)
[ -n "$engine" ] || skip "libp11's engine missing (Debian package libengine-pkcs11-openssl)"
# Debian's curl links GnuTLS (through librtmp and libldap), and GnuTLS hangs
# with the ASan runtime preloaded (which the sanitizer build's module needs):
# there the client is openssl s_client -starttls imap with the same engine.
use_curl=1
if [ "${CACHET_BUILD_KIND:-}" = asan ]; then use_curl=0; fi
if [ $use_curl = 1 ]; then
  curl --engine list 2>/dev/null | grep -q dynamic || skip "this curl has no OpenSSL engine support"
fi

mail_servers_start
a=cps-rpps b=$CACHET_CARD_PROFILE
[ "$b" != "$a" ] || fail "run with B's card (PROFILE cps-adeli)"
addr_a=$(mail_address "$a") addr_b=$(mail_address "$b")
[ -n "$addr_b" ] || fail "no address for $b"
pa=$CACHET_SIM_PKI/profiles/$a

step "A sends B a message (curl, SMTP submission, A's software key)"
printf 'From: <%s>\r\nTo: <%s>\r\nSubject: Compte rendu %s\r\n\r\nBonjour\r\n' \
  "$addr_a" "$addr_b" "$$" > "$work/msg"
curl -sS --max-time 30 "smtp://127.0.0.1:$SMTP_PORT" --ssl-reqd --tlsv1.2 --tls-max 1.2 \
  --cacert "$MAIL_SERVER_CA" --cert "$pa/auth.crt.pem" --key "$pa/auth.key.pem" \
  --mail-from "$addr_a" --mail-rcpt "$addr_b" --upload-file "$work/msg" \
  > "$work/smtp.out" 2>&1 || fail "curl smtp: $(cat "$work/smtp.out")"
mail_wait "$addr_b" 1 || fail "not delivered: $(tail -n 20 "$MAIL_POSTFIX_LOG")"

# curl + libp11's engine on libcachet-pkcs11 (as tests/integration/pkcs11/openssl.sh)
tok=$(uri_enc "$(token_label)")
auth_id=$(hex_uri "$(key_id CPS_PRIV_AUT)")
[ -n "$tok" ] && [ -n "$auth_id" ] || fail "token label / authentication key ID"
# A CPS3 signs PKCS#1 v1.5 only: OpenSSL would answer a TLS 1.2 server's
# signature_algorithms with RSA-PSS first (the engine then fails, "Mechanism
# invalid"); curl has no option for the client's signature algorithms, so they
# are restricted in OpenSSL's configuration (as -client_sigalgs in s_client).
cat > "$work/openssl.cnf" <<CONF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
ssl_conf = ssl_section
[ssl_section]
system_default = system_default_section
[system_default_section]
ClientSignatureAlgorithms = RSA+SHA256:RSA+SHA384:RSA+SHA512
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $engine
MODULE_PATH = $CACHET_PKCS11
init = 0
CONF
cert_pem "authentification" "$work/auth.pem"
cert_pem "AC" "$work/ca.pem"
cat "$work/auth.pem" "$work/ca.pem" > "$work/auth-chain.pem"
verify_pin_once
key="pkcs11:token=$tok;id=$auth_id;type=private"
# imap_card URL [CURL ARGS...]: curl as B with the card's authentication key.
imap_card() {
  local url=$1; shift
  OPENSSL_CONF="$work/openssl.cnf" p11run curl -sS --max-time 60 "$url" --ssl-reqd \
    --engine pkcs11 --key-type ENG --key "$key" --cert "$work/auth-chain.pem" \
    --cacert "$MAIL_SERVER_CA" --login-options AUTH=EXTERNAL "$@"
}

step "openssl s_client -starttls imap with the card: EXTERNAL, EXAMINE INBOX"
# SASL-IR: "AUTHENTICATE EXTERNAL =" (empty authorization identity, RFC 4422
# appendix A; RFC 4959); the server closes after LOGOUT (-ign_eof).
out=$(printf 'a AUTHENTICATE EXTERNAL =\r\nb EXAMINE INBOX\r\nc LOGOUT\r\n' |
  OPENSSL_CONF="$work/openssl.cnf" p11run timeout 60 openssl s_client -quiet -ign_eof \
    -connect "127.0.0.1:$IMAP_PORT" -starttls imap -tls1_2 -client_sigalgs RSA+SHA256 \
    -engine pkcs11 -keyform engine -key "$key" -cert "$work/auth.pem" -cert_chain "$work/ca.pem" \
    -CAfile "$MAIL_SERVER_CA" -verify_return_error 2>&1) || true
expect_match "$out" "^a OK " "EXTERNAL login with the card (s_client)"
expect_match "$out" "^\\* 1 EXISTS" "B's INBOX (s_client)"
if [ $use_curl = 0 ]; then
  echo "OK (curl not run in the sanitizer build: it loads GnuTLS, which hangs with ASan preloaded)"
  exit 0
fi

step "B lists the INBOX with the card (curl, STARTTLS, TLS 1.2, AUTH=EXTERNAL)"
out=$(imap_card "imap://127.0.0.1:$IMAP_PORT/INBOX" --tlsv1.2 --tls-max 1.2 \
        -X 'FETCH 1:* (FLAGS ENVELOPE)' 2>&1) ||
  fail "curl imap with the card: $out
$(tail -n 5 "$MAIL_DOVECOT_LOG")"
expect_match "$out" "^\\* 1 FETCH .*\"Compte rendu $$\"" "B's INBOX lists A's message"
expect_match "$out" "\"${addr_a%@*}\" \"${addr_a#*@}\"" "sender"
grep -q "Login: user=<$(mail_idnat "$b")>, method=EXTERNAL.*TLS" "$MAIL_DOVECOT_LOG" ||
  fail "Dovecot's login is not B's IdNat by EXTERNAL: $(tail -n 5 "$MAIL_DOVECOT_LOG")"

step "B fetches the message with the card"
out=$(imap_card "imap://127.0.0.1:$IMAP_PORT/INBOX/;MAILINDEX=1" --tlsv1.2 --tls-max 1.2 2>&1) ||
  fail "curl imap fetch: $out"
expect_match "$out" "^Bonjour" "message body"
expect_match "$out" "Client CN \"$(mail_idnat $a)\"" "A's certificate in Received:"

step "TLS 1.3 with the card: no login (no RSA-PSS on a CPS3)"
if out=$(imap_card "imap://127.0.0.1:$IMAP_PORT/INBOX" --tlsv1.3 -X 'EXAMINE INBOX' 2>&1); then
  fail "TLS 1.3 login with the card succeeded: $out"
fi
expect_match "$out" "Login denied|Mechanism invalid|alert" "TLS 1.3 failure"

echo "OK"
