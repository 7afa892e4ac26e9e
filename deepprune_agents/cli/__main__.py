"""``python -m deepprune_agents.cli``: same as the ``deepprune`` console script."""

from deepprune_agents.cli import console

console()
