/* cachet-sim: the appliance's firmware on the posix board (docs/simulation.md). */
#include "sim.h"

int main(int argc, char **argv)
{
    return sim_run(argc, argv);
}
