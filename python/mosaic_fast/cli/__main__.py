"""`python -m mosaic_fast.cli` runs the same command line as `mosaic-fast`."""

from mosaic_fast.cli import console

console()
