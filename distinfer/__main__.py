"""``python -m distinfer`` is the ``distinfer`` command."""

from distinfer._main import main

main()
