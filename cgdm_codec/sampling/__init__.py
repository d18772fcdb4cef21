"""Decoding-time machinery: seeded noise, the DDIM scheduler, tiling and the restore loop."""
