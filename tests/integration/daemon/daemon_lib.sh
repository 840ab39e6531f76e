# Helpers for cachetd's integration tests (sourced after ../lib.sh). The tests
# run inside scripts/lib/cachet-env, which started cachetd (section 4b):
# CACHETD_SOCKET, CACHETD_PID, CACHETD_LOG, CACHETD_AUDIT_LOG are set.
[ -n "${CACHETD_PID:-}" ] || skip "cachetd is not running in this environment (not built?)"
command -v cachet >/dev/null || skip "cachet not built"
# The appliance asks the holder to confirm every signature with the signature
# key (firmware/gate): gate_lib.sh reads its screen and presses its keys.
command -v jq >/dev/null || skip "jq missing"
. "$(dirname "${BASH_SOURCE[0]}")/../gate_lib.sh"

profile_value() { sed -n "s/^$1 *= *//p" "$(profile_dir)/profile.conf"; }

# A small RFC 5322 message from the card holder.
make_mail() {
  local from; from=$(profile_value email)
  printf 'From: Test <%s>\r\nTo: Claire Martin <claire.martin@kine.mssante.fr>\r\nSubject: Compte rendu %s\r\nDate: Mon, 1 Jan 2024 10:00:00 +0100\r\nMessage-ID: <%s@cachet.test>\r\n\r\nBonjour,\r\nceci est un compte rendu de test.\r\n' \
    "$from" "$2" "$RANDOM" > "$1"
}

vmrss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$CACHETD_PID/status"; }

# Reinserts the card with the timing model on (a real card's wire speed), slow
# commands (200 ms) and a long private-key operation (1.5 s), so that a test can
# act in the middle of a signature: a copy of the profile, same name (same card
# state file).
slow_card() {
  local pki="$work/pki-slow" p="$CACHET_CARD_PROFILE"
  if [ ! -d "$pki/profiles/$p" ]; then
    mkdir -p "$pki/profiles"
    cp -r "$(profile_dir)" "$pki/profiles/$p"
    sed -i '/^timing_compute_/d' "$pki/profiles/$p/profile.conf"
    printf 'timing_compute_rsa_ms = 1500\ntiming_compute_other_ms = 200\n' >> "$pki/profiles/$p/profile.conf"
  fi
  cachet-sim-ctl card remove >/dev/null
  CACHET_SIM_PKI="$pki" CACHET_CARD_TIMING=1 cachet-sim-ctl card insert "$p" >/dev/null
  poll 20000 cachet whoami || fail "cachetd did not bind the slow card"
}

# Pulls the card out while it works, as a hand does.
pull_card() {
  cachet-sim-ctl card remove >/dev/null || fail "card remove"
}

# cachetd's answer to raw bytes (python3: socat-less raw socket client).
# raw_exchange MODE: prints the responses as JSON lines.
raw_exchange() {
  python3 - "$CACHETD_SOCKET" "$1" <<'PY'
import json, socket, struct, sys
path, mode = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(path)
def send(obj=None, raw=None):
    data = raw if raw is not None else json.dumps(obj).encode()
    s.sendall(struct.pack(">I", len(data)) + data)
def recv():
    hdr = b""
    while len(hdr) < 4:
        chunk = s.recv(4 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    n = struct.unpack(">I", hdr)[0]
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return json.loads(body)
def show(x):
    print(json.dumps(x, ensure_ascii=False), flush=True)
if mode == "oversized":
    s.sendall(struct.pack(">I", 1 << 30))       # announces 1 GiB, sends nothing more
    show(recv())
    show(recv())                                 # then the connection ends: None
elif mode == "malformed":
    send(raw=b'{"v":1,"id":1,"method":"hello",')  # truncated JSON inside a whole frame
    show(recv())
    send({"v": 1, "id": 2, "method": "status"})   # before hello
    show(recv())
    send({"v": 1, "id": 3, "method": "hello", "params": {"versions": [1], "client": "raw"}})
    show(recv())
    send({"v": 1, "id": 4, "method": "no-such-method"})
    show(recv())
    send({"v": 1, "id": 5, "method": "sign-digest", "params": {"key": "auth", "mechanism": "sha256", "data": "AAAA"}})
    show(recv())
    send({"v": 1, "id": 6, "method": "status"})
    show(recv())
elif mode == "version":
    send({"v": 1, "id": 1, "method": "hello", "params": {"versions": [7]}})
    show(recv())
elif mode == "hold":
    # A client that starts a frame and stalls: it must not hold the others.
    # It stays until the file named by $HOLD_STOP exists (at most 30 s).
    import os, time
    s.sendall(b"\x00\x00")
    end = time.monotonic() + 30
    while not os.path.exists(os.environ["HOLD_STOP"]) and time.monotonic() < end:
        time.sleep(0.01)
PY
}
