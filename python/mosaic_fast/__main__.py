"""`python -m mosaic_fast` runs the same command line as `mosaic-fast`."""

from mosaic_fast.cli import console

console()
