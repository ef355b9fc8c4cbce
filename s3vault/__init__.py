"""s3vault: client-side encrypted S3 storage and sync in the AWS S3 Encryption Client format."""

__version__ = "0.1.0"
