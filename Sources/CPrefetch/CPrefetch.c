// Header-only module: see include/CPrefetch.h.
