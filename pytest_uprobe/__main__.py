"""`python -m pytest_uprobe symbols EXE [GLOB]`: the same as the `pytest-uprobe` command."""

from .cli import main

raise SystemExit(main())
