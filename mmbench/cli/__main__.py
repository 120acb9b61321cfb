"""``python -m mmbench.cli``: the same as the ``mmbench`` command."""

from mmbench.cli.app import main

main()
