"""`python -m apps` is the same as the `apps` command."""

from apps.cli import main

main()
