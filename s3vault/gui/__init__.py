"""The desktop app (`s3vault gui`): a face like `s3vault.cli`.

It talks to the sync agent over the control socket only (it never runs the sync
engine itself) and uses the vault for browsing, inspecting, rotating, uploading and
downloading. Nothing slow runs on the UI thread: S3, KMS, the keyring and file I/O
run as `jobs.Job`s in a thread pool and come back as signals. Needs the extra `gui`
(PySide6).
"""
