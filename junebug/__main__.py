"""``python -m junebug`` runs the ``jb`` command."""

from junebug.cli import main

main()
