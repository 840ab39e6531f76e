/* sim_proto: the pure (I/O-free) codecs of cachet-sim's three wire protocols,
 * docs/simulation.md §1 (virtual USB cable), §2 (card contacts) and §3 (control).
 * Split from the socket code so it can be unit-tested and fuzzed. */
#ifndef CACHET_SIM_PROTO_H
#define CACHET_SIM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "port_ui.h"

/* §1 virtual USB cable: 8-byte header (kind, ep, status BE16, length BE32). */
#define SIM_USB_HDR_LEN 8u
#define SIM_USB_PAYLOAD_MAX 4096u
#define SIM_USB_FRAME_MAX (SIM_USB_HDR_LEN + SIM_USB_PAYLOAD_MAX)
#define SIM_USB_SETUP_LEN 8u /* USB 2.0 §9.3: a SETUP packet is 8 bytes */

enum {
    SIM_USB_SETUP = 0x01,      /* host → device */
    SIM_USB_SETUP_DONE = 0x02, /* device → host */
    SIM_USB_OUT = 0x03,        /* host → device */
    SIM_USB_IN = 0x04,         /* device → host */
};
enum { SIM_USB_ACK = 0, SIM_USB_STALL = 1 };

typedef struct {
    uint8_t kind;
    uint8_t ep;
    uint16_t status;
    uint32_t len;
} sim_usb_hdr_t;

/* §2 card contacts: 1-byte kind, BE16 length, payload. */
#define SIM_CT_HDR_LEN 3u
#define SIM_CT_PAYLOAD_MAX 1024u
#define SIM_CT_FRAME_MAX (SIM_CT_HDR_LEN + SIM_CT_PAYLOAD_MAX)

enum {
    SIM_CT_VCC = 0x01,
    SIM_CT_RST = 0x02,
    SIM_CT_CLK = 0x03,
    SIM_CT_IO = 0x04,
};

typedef enum {
    SIM_FRAME_OK = 0,   /* a whole frame is at the start of the buffer */
    SIM_FRAME_MORE,     /* not enough bytes yet */
    SIM_FRAME_TOO_LONG, /* the header announces more than the cap: drop the peer */
} sim_frame_status_t;

void sim_usb_hdr_encode(uint8_t out[SIM_USB_HDR_LEN], const sim_usb_hdr_t *h);

/* Looks for one whole cable frame at the start of buf[0..len). On SIM_FRAME_OK
 * fills *h and *frame_len (header + payload). */
sim_frame_status_t sim_usb_frame_next(const uint8_t *buf, size_t len,
                                      sim_usb_hdr_t *h, size_t *frame_len);

/* Checks a host → device frame against §1. Returns NULL when valid, else a
 * short English reason for the log. */
const char *sim_usb_host_frame_check(const sim_usb_hdr_t *h,
                                     const uint8_t *payload);

/* Looks for one whole contacts frame at the start of buf[0..len). */
sim_frame_status_t sim_ct_frame_next(const uint8_t *buf, size_t len,
                                     uint8_t *kind, size_t *payload_len,
                                     size_t *frame_len);

/* Writes a contacts frame header (payload_len <= SIM_CT_PAYLOAD_MAX). */
void sim_ct_hdr_encode(uint8_t out[SIM_CT_HDR_LEN], uint8_t kind,
                       size_t payload_len);

/* §3 control channel. */
#define SIM_CTL_LINE_MAX 256u

typedef enum {
    SIM_CMD_INVALID = 0,
    SIM_CMD_STATUS,
    SIM_CMD_PLUG,
    SIM_CMD_UNPLUG,
    SIM_CMD_SCREEN,
    SIM_CMD_SCREEN_JSON,
    SIM_CMD_KEY,
} sim_cmd_kind_t;

typedef struct {
    sim_cmd_kind_t kind;
    port_key_t key; /* SIM_CMD_KEY only */
    const char *why; /* SIM_CMD_INVALID: reason for the ERR line */
} sim_cmd_t;

/* Parses one command line (no line terminator). Never fails: bad lines give
 * SIM_CMD_INVALID with a reason. */
void sim_cmd_parse(const char *line, sim_cmd_t *cmd);

/* "0".."9", "ok", "cancel", "clear" → key; false otherwise. */
bool sim_key_parse(const char *s, port_key_t *key);

/* Appends s as a JSON string (with quotes) to out[*pos..cap). Control
 * characters are escaped; other bytes (UTF-8) pass through. Returns false when
 * it does not fit (out is then unchanged past the old *pos terminator). */
bool sim_json_append_string(char *out, size_t cap, size_t *pos, const char *s);

/* Copies s into out (cap >= 1) replacing control characters by '?' so a
 * display line cannot break the line-based control protocol. */
void sim_text_sanitize(char *out, size_t cap, const char *s);

#endif
