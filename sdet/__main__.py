"""`python -m sdet` (also `torchrun ... -m sdet`)."""
import sys

from sdet.cli import main

sys.exit(main())
