/* main: board/stm32's main loop. The USB and card peripherals are not driven
 * yet (port_stub.c), so app_poll runs continuously; later the loop sleeps
 * (WFI) until an interrupt has queued an event, at least every
 * APP_POLL_PERIOD_US. */
#include "app.h"
#include "stm32_board.h"

int main(void)
{
    app_init();
    for (;;)
        app_poll();
}
