"""What the routes do, as functions over a session and a MachineClient: the routes stay thin
and HTTP-only."""
