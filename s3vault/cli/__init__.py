"""The `s3vault` command line (click)."""
