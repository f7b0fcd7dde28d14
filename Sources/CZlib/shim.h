#ifndef CONTACTD_CZLIB_SHIM_H
#define CONTACTD_CZLIB_SHIM_H

// zlib's CRC-32 (the one gzip and PNG use), for the cache snapshot's checksums.
#include <zlib.h>

#endif
