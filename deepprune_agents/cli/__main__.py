"""``python -m deepprune_agents.cli``: same as the ``deepprune`` console script."""

import sys

from deepprune_agents.cli import main

sys.exit(main())
