# shellcheck shell=bash
# Real mail servers for the tests (issue 6): a private Postfix (submission,
# STARTTLS required, client certificate required and bound to the sender
# address) and a private Dovecot (IMAP, STARTTLS, login with the client
# certificate only: SASL EXTERNAL), both from Debian's packages, run as the
# test's own processes in a temporary directory under $CACHET_SIM_DIR. Nothing
# of the system's mail configuration (/etc/postfix, /etc/dovecot, services) is
# read or changed. Sourced after ../lib.sh; see docs/mssante-clients.md.
#
#   mail_servers_start [--smtp-tls13-only]
#       starts both servers (the option: Postfix's submission accepts TLS 1.3
#       only, which a CPS3 card cannot do: fault tests). Exports
#       SMTP_HOST, SMTP_PORT, IMAP_PORT, MAIL_DIR (Maildirs, one per address),
#       MAIL_SERVER_CA (the CA of the servers' certificates, for clients),
#       MAIL_CLIENT_CA (what the servers trust: IGC-Santé test roots +
#       intermediates), MAIL_SERVERS_DIR, MAIL_POSTFIX_LOG, MAIL_DOVECOT_LOG.
#       Stops them when the test ends (EXIT trap, appended), and in any case
#       after $MAIL_SERVERS_TIMEOUT seconds (default 600).
#   mail_servers_stop
#   mail_address PROFILE           the practitioner's address (profile.conf)
#   mail_idnat PROFILE             the IdNat (CN of the authentication certificate)
#   mail_count ADDRESS             messages in ADDRESS's Maildir (new + cur)
#   mail_wait ADDRESS N [MS]       waits (default 30 s) until it holds N messages
#   mail_last ADDRESS              path of the newest message
#
# Binding of certificates to addresses (Postfix 3.7): smtpd_sender_login_maps
# only knows SASL login names, so the check is check_ccert_access keyed by the
# client certificate's SHA-256 fingerprint (smtpd_tls_fingerprint_digest),
# whose value is a restriction class allowing exactly that practitioner's
# address (check_sender_access) and rejecting any other; a trusted certificate
# that is not in the table is rejected too. Tables are texthash: (no postmap).
# Dovecot's user name is the certificate's commonName (the IdNat), looked up in
# passwd-file passdb/userdb files giving that practitioner's Maildir.

mail_profiles=(cps-rpps cps-adeli)

mail_address() { sed -n 's/^email *= *//p' "$CACHET_SIM_PKI/profiles/$1/profile.conf"; }
mail_idnat() {
  openssl x509 -in "$CACHET_SIM_PKI/profiles/$1/auth.crt.pem" -noout -subject -nameopt multiline |
    sed -n 's/^.*commonName *= *\([^+]*[^+ ]\).*$/\1/p' | head -n1
}

# A free TCP port on 127.0.0.1 (bound by nobody now; the server is started
# right after and its start-up checked).
mail_free_port() {
  local p
  for _ in $(seq 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then echo "$p"; return 0; fi
  done
  return 1
}

mail_listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

mail_count() {
  local d=$MAIL_DIR/$1
  find "$d/new" "$d/cur" -type f 2>/dev/null | wc -l
}
mail_wait() {
  local addr=$1 n=$2 ms=${3:-30000}
  poll "$ms" sh -c '[ "$(find "$1/new" "$1/cur" -type f 2>/dev/null | wc -l)" -ge "$2" ]' \
    _ "$MAIL_DIR/$addr" "$n"
}
mail_last() {
  local d=$MAIL_DIR/$1
  ls -t "$d"/new/* "$d"/cur/* 2>/dev/null | head -n1
}

# The servers' own test CA and a certificate for localhost / 127.0.0.1.
mail_make_server_pki() {
  local d=$1
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 \
    -subj "/O=Cachet tests/CN=Cachet test mail CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    >/dev/null 2>&1 || fail "mail servers: test CA"
  openssl req -newkey rsa:2048 -nodes -keyout "$d/server.key" -out "$d/server.csr" \
    -subj "/O=Cachet tests/CN=localhost" >/dev/null 2>&1 || fail "mail servers: server key"
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" > "$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/server.ext" -out "$d/server.pem" >/dev/null 2>&1 ||
    fail "mail servers: server certificate"
  cat "$CACHET_SIM_PKI/roots.pem" "$CACHET_SIM_PKI/intermediates.pem" > "$d/clientca.pem"
  chmod 0644 "$d/ca.pem" "$d/server.pem" "$d/clientca.pem"
}

mail_postfix_config() {
  local pf=$1 protos=$2 p addr dom cls fp classes="" domains=""
  mkdir -p "$pf/etc" "$pf/queue" "$pf/data"
  : > "$pf/etc/vmailbox"
  : > "$pf/etc/ccert"
  for p in "${mail_profiles[@]}"; do
    addr=$(mail_address "$p")
    [ -n "$addr" ] || fail "no email in profile $p"
    dom=${addr#*@}
    case " $domains " in *" $dom "*) ;; *) domains="$domains $dom" ;; esac
    cls=from_${p//-/_}
    classes="$classes $cls"
    fp=$(openssl x509 -in "$CACHET_SIM_PKI/profiles/$p/auth.crt.pem" -noout -fingerprint -sha256 |
         sed 's/^.*=//')
    printf '%s %s/\n' "$addr" "$addr" >> "$pf/etc/vmailbox"
    # the authentication certificate's fingerprint → its practitioner's class
    printf '%s %s\n' "$fp" "$cls" >> "$pf/etc/ccert"
    printf '%s OK\n' "$addr" > "$pf/etc/sender_$cls"
    mkdir -p "$MAIL_DIR/$addr"/{new,cur,tmp}
  done
  chown -R 65534:65534 "$MAIL_DIR"
  cat > "$pf/etc/main.cf" <<CONF
# Private Postfix instance of a Cachet test (tests/integration/mail/mail_lib.sh)
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $pf/postfix.log
maillog_file_prefixes = $pf
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = localhost
mydomain = localdomain
myorigin = localhost
mydestination =
mynetworks = 127.0.0.1/32
relay_domains =
local_transport = error:5.1.1 no local delivery
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
# Both practitioners' addresses: Maildirs for Dovecot (uid/gid nobody).
virtual_mailbox_domains =$domains
virtual_mailbox_base = $MAIL_DIR
virtual_mailbox_maps = texthash:$pf/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
message_size_limit = ${MAIL_SIZE_LIMIT:-52428800}
virtual_mailbox_limit = 0
mailbox_size_limit = 0
# TLS: the server's certificate; clients verified against the IGC-Santé test
# roots and intermediates.
smtpd_tls_cert_file = $MAIL_SERVERS_DIR/tls/server.pem
smtpd_tls_key_file = $MAIL_SERVERS_DIR/tls/server.key
smtpd_tls_CAfile = $MAIL_SERVERS_DIR/tls/clientca.pem
smtpd_tls_fingerprint_digest = sha256
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
# The sender must be the address bound to the client certificate.
smtpd_restriction_classes =$classes
$(for c in $classes; do
  printf '%s = check_sender_access texthash:%s, check_sender_access static:{REJECT 5.7.1 sender address not bound to this client certificate}\n' \
    "$c" "$pf/etc/sender_$c"
done)
smtpd_delay_reject = no
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions = check_ccert_access texthash:$pf/etc/ccert, reject
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = reject_unauth_destination
CONF
  cat > "$pf/etc/master.cf" <<CONF
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_ask_ccert=yes
  -o smtpd_tls_req_ccert=yes
  -o smtpd_tls_mandatory_protocols=$protos
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF
}

mail_dovecot_config() {
  local dv=$1 p addr idnat
  mkdir -p "$dv/run" "$dv/state"
  : > "$dv/passdb"
  : > "$dv/userdb"
  for p in "${mail_profiles[@]}"; do
    addr=$(mail_address "$p")
    idnat=$(mail_idnat "$p")
    [ -n "$idnat" ] || fail "no commonName in $p's authentication certificate"
    # passdb: the certificate is the credential (EXTERNAL), no password.
    printf '%s:::::::nopassword\n' "$idnat" >> "$dv/passdb"
    # userdb: IdNat → the practitioner's Maildir (Postfix delivers there)
    printf '%s::65534:65534::%s::\n' "$idnat" "$MAIL_DIR/$addr" >> "$dv/userdb"
  done
  cat > "$dv/dovecot.conf" <<CONF
# Private Dovecot instance of a Cachet test (tests/integration/mail/mail_lib.sh)
protocols = imap
listen = 127.0.0.1
base_dir = $dv/run
state_dir = $dv/state
instance_name = cachet-test-$$
log_path = $dv/dovecot.log
info_log_path = $dv/dovecot.log
auth_verbose = yes
mail_location = maildir:~
first_valid_uid = 100
mail_uid = 65534
mail_gid = 65534
# STARTTLS required; the client certificate requested, verified against the
# IGC-Santé test chain, and required to log in.
ssl = required
ssl_cert = <$MAIL_SERVERS_DIR/tls/server.pem
ssl_key = <$MAIL_SERVERS_DIR/tls/server.key
ssl_ca = <$MAIL_SERVERS_DIR/tls/clientca.pem
ssl_verify_client_cert = yes
ssl_require_crl = no
ssl_min_protocol = TLSv1.2
# The user name is the certificate's commonName (the IdNat of a CPS).
ssl_cert_username_field = commonName
auth_ssl_require_client_cert = yes
auth_ssl_username_from_cert = yes
auth_mechanisms = external
disable_plaintext_auth = yes
passdb {
  driver = passwd-file
  args = $dv/passdb
}
userdb {
  driver = passwd-file
  args = $dv/userdb
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0600
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
CONF
}

mail_servers_start() {
  local protos='>=TLSv1.2'
  case "${1:-}" in
    --smtp-tls13-only) protos='>=TLSv1.3' ;;
    "") ;;
    *) fail "mail_servers_start: unknown option $1" ;;
  esac
  command -v postconf >/dev/null && [ -x /usr/lib/postfix/sbin/master ] ||
    skip "Postfix missing (Debian package postfix: scripts/setup)"
  command -v dovecot >/dev/null && [ -x /usr/lib/dovecot/imap ] ||
    skip "Dovecot missing (Debian package dovecot-imapd: scripts/setup)"
  [ "$(id -u)" = 0 ] || skip "the mail servers need root (Postfix's and Dovecot's privilege separation)"
  MAIL_SERVERS_DIR=$(mktemp -d "$CACHET_SIM_DIR/mail.XXXXXX")
  # Postfix's and Dovecot's unprivileged processes (postfix, nobody,
  # dovenull) must reach their files: traversal only.
  chmod 0711 "$CACHET_SIM_DIR" "$MAIL_SERVERS_DIR"
  MAIL_DIR=$MAIL_SERVERS_DIR/maildirs
  mkdir -p "$MAIL_SERVERS_DIR/tls" "$MAIL_DIR"
  chmod 0711 "$MAIL_DIR"
  mail_make_server_pki "$MAIL_SERVERS_DIR/tls"
  MAIL_SERVER_CA=$MAIL_SERVERS_DIR/tls/ca.pem
  MAIL_CLIENT_CA=$MAIL_SERVERS_DIR/tls/clientca.pem
  SMTP_HOST=127.0.0.1
  SMTP_PORT=$(mail_free_port) || fail "no free port"
  IMAP_PORT=$(mail_free_port) || fail "no free port"
  [ "$SMTP_PORT" != "$IMAP_PORT" ] || IMAP_PORT=$(mail_free_port)
  MAIL_POSTFIX_LOG=$MAIL_SERVERS_DIR/postfix/postfix.log
  MAIL_DOVECOT_LOG=$MAIL_SERVERS_DIR/dovecot/dovecot.log
  export SMTP_HOST SMTP_PORT IMAP_PORT MAIL_DIR MAIL_SERVER_CA MAIL_CLIENT_CA \
    MAIL_SERVERS_DIR MAIL_POSTFIX_LOG MAIL_DOVECOT_LOG
  local pf=$MAIL_SERVERS_DIR/postfix dv=$MAIL_SERVERS_DIR/dovecot
  mail_postfix_config "$pf" "$protos"
  mail_dovecot_config "$dv"
  local limit=${MAIL_SERVERS_TIMEOUT:-600}

  # Stopped when the test ends, whatever EXIT trap it already has.
  local prev
  prev=$(trap -p EXIT | sed "s/^trap -- '\(.*\)' EXIT\$/\1/")
  # shellcheck disable=SC2064
  trap "mail_servers_stop; ${prev:-:}" EXIT

  # Postfix: queue/data directories created with their owners, then the
  # master in the foreground (postfix start-fg → master -s), bounded in time.
  postfix -c "$pf/etc" set-permissions >"$pf/setup.log" 2>&1 ||
    postfix -c "$pf/etc" post-install create-missing >>"$pf/setup.log" 2>&1 || true
  postfix -c "$pf/etc" check >>"$pf/setup.log" 2>&1 || fail "postfix check: $(cat "$pf/setup.log")"
  MAIL_POSTFIX_CONF=$pf/etc
  (exec timeout -k 5 "$limit" postfix -c "$pf/etc" start-fg) >"$pf/master.out" 2>&1 </dev/null &
  MAIL_POSTFIX_PID=$!
  # Dovecot in the foreground, bounded in time too.
  MAIL_DOVECOT_CONF=$dv/dovecot.conf
  (exec timeout -k 5 "$limit" dovecot -F -c "$dv/dovecot.conf") >"$dv/dovecot.out" 2>&1 </dev/null &
  MAIL_DOVECOT_PID=$!
  poll 20000 mail_listening "$SMTP_PORT" ||
    fail "Postfix does not listen on $SMTP_PORT: $(cat "$pf/master.out" "$MAIL_POSTFIX_LOG" 2>/dev/null)"
  poll 20000 mail_listening "$IMAP_PORT" ||
    fail "Dovecot does not listen on $IMAP_PORT: $(cat "$dv/dovecot.out" "$MAIL_DOVECOT_LOG" 2>/dev/null)"
  # A guard stops them too when the test's shell is gone without running its
  # EXIT trap (killed, or a later `trap ... EXIT` replaced ours): it waits for
  # the end of a pipe only this shell (and its later children) holds open.
  exec {MAIL_GUARD_FD}> >(read -r _ || true; mail_servers_stop >/dev/null 2>&1)
}

mail_servers_stop() {
  set +e
  local guard=${MAIL_GUARD_FD:-}
  MAIL_GUARD_FD=""
  if [ -n "${MAIL_POSTFIX_PID:-}" ]; then
    postfix -c "$MAIL_POSTFIX_CONF" stop >/dev/null 2>&1 || kill "$MAIL_POSTFIX_PID" 2>/dev/null
    poll 10000 sh -c "! kill -0 $MAIL_POSTFIX_PID" || kill -9 "$MAIL_POSTFIX_PID" 2>/dev/null
    MAIL_POSTFIX_PID=""
  fi
  if [ -n "${MAIL_DOVECOT_PID:-}" ]; then
    doveadm -c "$MAIL_DOVECOT_CONF" stop >/dev/null 2>&1 || kill "$MAIL_DOVECOT_PID" 2>/dev/null
    poll 10000 sh -c "! kill -0 $MAIL_DOVECOT_PID" || kill -9 "$MAIL_DOVECOT_PID" 2>/dev/null
    MAIL_DOVECOT_PID=""
  fi
  if [ -n "$guard" ]; then exec {guard}>&-; fi
  set -e
}
