/* A fake cachetd for libcachet-pkcs11's unit tests: a Unix socket in a
 * private directory speaking docs/protocol.md (hello, status, identity,
 * certificates, subscribe, verify-pin, logout, sign-digest), one thread per
 * connection, with a card state the test sets and events it sends. It records
 * the last sign-digest and verify-pin requests, and the peer pids. */
#ifndef CACHET_FAKE_CACHETD_H
#define CACHET_FAKE_CACHETD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    bool reader_present;
    bool card_present;
    bool pinpad;
    char serial[64];
    char pin[16];
    int tries_left;
    bool verified;
    /* what the next card operations answer instead ("" = normal) */
    char sign_error[32];
    char verify_error[32];
    int sign_delay_ms;
} fake_card_t;

typedef struct {
    char key[8];
    char mechanism[16];
    uint8_t data[512];
    size_t data_len;
    int count;
} fake_sign_t;

/* Starts the fake on DIR/cachetd.sock with the test PKI's cps-rpps profile. */
bool fake_start(const char *dir, const char *pki_dir);
void fake_stop(void);
/* Closes every connection (cachetd restarting) but keeps listening. */
void fake_drop_connections(void);

void fake_get(fake_card_t *out);
void fake_set(const fake_card_t *in);
/* Sends an event to the subscribers: "card-removed", "card-inserted", ... */
void fake_event(const char *name);
fake_sign_t fake_last_sign(void);
int fake_verify_count(bool *last_had_pin);
int fake_logout_count(void);
/* Number of subscribers now. */
int fake_subscribers(void);
/* pid of the last client that connected (SO_PEERCRED). */
pid_t fake_last_peer(void);
/* Number of connections accepted so far. */
int fake_connections(void);
const char *fake_socket_path(void);

#endif
