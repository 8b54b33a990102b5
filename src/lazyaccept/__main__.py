"""``python -m lazyaccept``: the same program as the ``lazyaccept`` command."""

from .cli import main

main()
