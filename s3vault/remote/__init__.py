"""S3 through boto3: opaque bytes and user metadata, streamed in bounded memory."""
