"""`python -m s3vault` runs the command line."""

from s3vault.cli.main import main

main()
