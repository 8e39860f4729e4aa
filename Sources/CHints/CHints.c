// Header-only module: see include/CHints.h.
