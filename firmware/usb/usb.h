/* usb: the USB 2.0 device core (chapter 9). Owns the ep0 state: standard
 * requests (GET_DESCRIPTOR, SET_ADDRESS, SET/GET_CONFIGURATION, GET_STATUS,
 * SET/CLEAR_FEATURE, GET/SET_INTERFACE) and the dispatch of class requests and
 * OUT transfers to the one class driver through its ops table.
 *
 * The board calls the usb_on_* functions from its main loop (never from an ISR);
 * the core answers through port_usb.h. */
#ifndef CACHET_USB_H
#define CACHET_USB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A SETUP packet, decoded (USB 2.0 §9.3). */
typedef struct {
    uint8_t bmRequestType;
    uint8_t bRequest;
    uint16_t wValue;
    uint16_t wIndex;
    uint16_t wLength;
} usb_setup_t;

/* The class driver, as an ops table (all members required). */
typedef struct {
    /* Bus reset or detach: drop every transfer in progress. */
    void (*on_reset)(void);
    /* SET_CONFIGURATION with a non-zero value. */
    void (*on_configured)(void);
    /* Class or vendor request addressed to the interface. The handler answers
     * with port_usb_ep0_reply; returning false makes the core STALL instead. */
    bool (*on_request)(const usb_setup_t *setup, const uint8_t *data, size_t len);
    /* One complete OUT transfer on a non-zero endpoint. */
    void (*on_out)(uint8_t ep, const uint8_t *data, size_t len);
} usb_class_ops_t;

/* Descriptors as bytes; strings as UTF-8 (the core converts to UTF-16LE).
 * strings[0] is string index 1 (index 0 is the language ID list). */
typedef struct {
    const uint8_t *device;
    size_t device_len;
    const uint8_t *config; /* whole configuration: interface, class, endpoints */
    size_t config_len;
    const char *const *strings;
    size_t string_count;
} usb_descriptors_t;

void usb_init(const usb_descriptors_t *desc, const usb_class_ops_t *cls);

/* Board events. */
void usb_on_reset(void);
void usb_on_detach(void);
void usb_on_setup(const uint8_t setup[8], const uint8_t *data, size_t len);
void usb_on_out(uint8_t ep, const uint8_t *data, size_t len);

/* True once the host selected a configuration. */
bool usb_configured(void);

#endif
