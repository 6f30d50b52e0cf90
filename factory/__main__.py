"""`python -m factory` is the `factory` command."""

from factory.cli.main import main

main()
