"""The sync agent: one process per user that owns the sync engines and serves the
control socket (docs/agent.md).

- `daemon`   process life cycle: lock, engines, signals, systemd notifications
- `watcher`  file-system events and periodic rescans → reconciles, with backoff
- `status`   what the agent is doing, as a thread-safe snapshot
- `metrics`  the status as Prometheus text; `metrics_file` writes it (agent.metrics_file)
- `server`   the control socket; `protocol` its JSON messages; `client` the other end
- `paths`    where the socket, the lock and the log live
"""
