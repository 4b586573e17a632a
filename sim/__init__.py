"""The local cloud: a vast.ai-compatible marketplace whose machines are real local sandboxes.

Run it with `python -m sim --data-dir DIR --port PORT --api-key KEY`; see sim/README.md for the
wire protocol it speaks and its fault-injection admin API.
"""
