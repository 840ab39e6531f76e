/* Status values shared by every port function that can fail. */
#ifndef CACHET_PORT_STATUS_H
#define CACHET_PORT_STATUS_H

typedef enum {
    PORT_OK = 0,
    PORT_TIMEOUT,  /* nothing arrived before the deadline */
    PORT_ABSENT,   /* the peer (card, host) is not there: removed, unplugged */
    PORT_ERROR,    /* the line or the peripheral failed */
} port_status_t;

#endif
