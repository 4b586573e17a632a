"""GPU -> CPU failover in the database: each owner's standby defaults and the projection of
each machine's standby, as its workflow reports it through the outbox."""
