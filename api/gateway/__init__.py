"""The serverless gateway: `/serverless/{machine_id}/{path}` forwarded to the machine's service,
held in a bounded queue while the machine resumes (DESIGN.md §5). Served by the API's process
ahead of its routing (`mount.py`), or as its own process (`dumont gateway`, `standalone.py`).

- `app.py`: the `Gateway`, one request from route to answer, and its lifecycle
- `routes.py`: each machine's route from the database, cached (stale-while-revalidate)
- `target.py`: which machine a path is for and the path its service sees
- `auth.py`, `headers.py`: endpoint keys; what headers travel
- `downstream.py`, `forward.py`: the client's body and disconnect; streaming to the service
- `hold.py`, `waker.py`: the hold queue; one wake (resume, then readiness) per machine
- `traffic.py`: traffic reports to the workflow, per interval with leases
- `ws_session.py`, `websocket.py`: WebSocket sessions; `seams.py`, `ssh_tunnel.py`: `via_ssh`
- `answers.py`: the gateway's own answers; `signals.py`: SIGTERM answers held requests at once
"""
