/* port_stub: STUBS of the port layer for board/stm32, so that the firmware core
 * links for the target. They do nothing useful yet: no USB device controller
 * (the host never sees the device), no smart-card USART (no card is ever
 * present), a clock that only counts calls. Each will be replaced by a driver
 * for the STM32F405 peripheral named beside it; their contracts are the
 * headers in firmware/port. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "port_board.h"
#include "port_icc.h"
#include "port_time.h"
#include "port_ui.h"
#include "port_usb.h"

/* ---- port_usb: OTG_FS device (RM0090 §34), not driven yet ---- */

port_status_t port_usb_ep0_reply(const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    return PORT_ABSENT;
}

void port_usb_ep0_stall(void)
{
}

void port_usb_set_address(uint8_t addr)
{
    (void)addr;
}

port_status_t port_usb_write(uint8_t ep, const uint8_t *data, size_t len)
{
    (void)ep;
    (void)data;
    (void)len;
    return PORT_ABSENT;
}

/* ---- port_icc: USART smart-card mode (RM0090 §30.3.11) + GPIOs, not driven yet ---- */

bool port_icc_present(void)
{
    return false;
}

void port_icc_vcc(bool on)
{
    (void)on;
}

void port_icc_rst(bool high)
{
    (void)high;
}

void port_icc_clock(uint32_t hz)
{
    (void)hz;
}

void port_icc_set_timing(uint16_t f, uint8_t d, uint8_t extra_guard_etu)
{
    (void)f;
    (void)d;
    (void)extra_guard_etu;
}

void port_icc_set_convention(bool inverse)
{
    (void)inverse;
}

port_status_t port_icc_send(const uint8_t *buf, size_t len)
{
    (void)buf;
    (void)len;
    return PORT_ABSENT;
}

port_status_t port_icc_recv(uint8_t *byte, uint32_t timeout_us)
{
    (void)byte;
    (void)timeout_us;
    return PORT_ABSENT;
}

void port_icc_flush(void)
{
}

/* ---- port_time: TIM2/TIM5 32-bit timer later; for now a call counter ---- */

uint64_t port_time_us(void)
{
    /* Monotonic as the contract asks, but not a real clock yet. */
    static uint64_t fake_us;
    return ++fake_us;
}

/* ---- port_board: the 96-bit unique device ID (RM0090 §39.1) later ---- */

const char *port_board_serial(void)
{
    return "STM32-STUB";
}

/* ---- port_ui: display and keypad, not wired yet ---- */

void port_ui_show(const char *name, const char *const lines[PORT_UI_LINES])
{
    (void)name;
    (void)lines;
}

port_key_t port_ui_key(void)
{
    return PORT_KEY_NONE;
}

port_key_t port_ui_wait_key(uint32_t timeout_us)
{
    /* No keypad yet (it will sleep until the keypad EXTI interrupt): nobody
     * ever answers, so a question ends by its time-out. */
    (void)timeout_us;
    return PORT_KEY_NONE;
}
