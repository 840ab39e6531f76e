/* sim_board: the posix board's clock and identity (port_time.h, port_board.h). */
#include "sim.h"

#include "port_board.h"
#include "port_time.h"

uint64_t port_time_us(void)
{
    /* CLOCK_MONOTONIC: never jumps with the wall clock, like a hardware timer. */
    return sim_now_us();
}

const char *port_board_serial(void)
{
    /* The simulated appliance has one fixed serial (USB iSerialNumber). */
    return "SIM00000001";
}
