/* port_time fake: a clock the test moves (fake_flash_rng.h). */
#include "fake_flash_rng.h"

#include "port_time.h"

static uint64_t fake_now_us = 1000000u;

void fake_time_set_us(uint64_t us)
{
    fake_now_us = us;
}

void fake_time_advance_us(uint64_t us)
{
    fake_now_us += us;
}

uint64_t port_time_us(void)
{
    return fake_now_us;
}
