/*
 * sidecar.c - names of the process-wide states (sidecar.h), as Envoy's /server_info
 * names them.
 */
#include "sidecar.h"

const char *sidecar_state_str(int state)
{
    switch (state) {
    case SIDECAR_STARTING:
        return "PRE_INITIALIZING";
    case SIDECAR_LIVE:
        return "LIVE";
    case SIDECAR_DRAINING:
        return "DRAINING";
    }
    return "UNKNOWN";
}
