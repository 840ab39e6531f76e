/* fake_device: a scripted CCID appliance behind the ifd transport ops table
 * (the seam of drivers/ifd). It answers the standard control requests from
 * the appliance's descriptors, records every PC_to_RDR command, answers them
 * from a small card model (or from injected messages), and lets tests push
 * interrupt messages, unplug and plug the cable. */
#ifndef CACHET_TEST_FAKE_DEVICE_H
#define CACHET_TEST_FAKE_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ifd_transport.h"

#define FAKE_MSG_MAX 600
#define FAKE_QUEUE   32
#define FAKE_CMDS    64

typedef struct {
    uint8_t msg[FAKE_MSG_MAX];
    size_t len;
    uint64_t ready_at_ms;
} fake_msg_t;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gone;
    bool plugged;
    bool cancelled;
    bool wake;
    int reconnects;
    int control_calls;
    int set_config_value;

    uint8_t config[256];
    size_t config_len;

    /* Card model. */
    uint8_t icc; /* 0 active, 1 inactive, 2 absent */
    uint8_t atr[33];
    size_t atr_len;

    /* Answer script. */
    fake_msg_t bulk[FAKE_QUEUE];
    unsigned bulk_head, bulk_count;
    fake_msg_t intr[FAKE_QUEUE];
    unsigned intr_head, intr_count;

    /* Recorded commands. */
    uint8_t cmd[FAKE_CMDS][FAKE_MSG_MAX];
    size_t cmd_len[FAKE_CMDS];
    unsigned cmd_count;

    /* Behaviour of the next commands. */
    int time_extensions;      /* before the next XfrBlock/SetParameters answer */
    uint32_t time_ext_gap_ms; /* delay between them */
    uint8_t xfr_reply[300];
    size_t xfr_reply_len;
    uint8_t fail_type; /* PC_to_RDR type to fail (0: none) */
    uint8_t fail_error;
    bool fail_once;
    bool silent;      /* do not answer (timeout tests) */
    bool gone_on_xfr; /* unplug when an XfrBlock arrives */
} fake_t;

extern const ifd_transport_ops_t fake_ops;

/* Sets up the appliance of docs/brief ccid (VID 1209, PID CAC7, dwFeatures
 * 0x0002049C, dwMaxCCIDMessageLength 271, bPINSupport pin). */
void fake_init(fake_t *f, uint8_t pin_support, uint16_t lcd_layout);
void fake_destroy(fake_t *f);

void fake_push_bulk(fake_t *f, const uint8_t *msg, size_t len, uint32_t delay_ms);
void fake_push_intr(fake_t *f, const uint8_t *msg, size_t len);
void fake_unplug(fake_t *f);
void fake_plug(fake_t *f);
void fake_set_card(fake_t *f, uint8_t icc, const uint8_t *atr, size_t atr_len);

/* The last recorded command of a type (NULL if none). */
const uint8_t *fake_last_cmd(fake_t *f, uint8_t type, size_t *len);

#endif
