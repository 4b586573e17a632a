"""The Dumont agent: runs on every machine and reports what it sees to the control plane.

It uses only the standard library (and pynvml when the machine has it), so it runs with the stock
`python3` of a CUDA image. `agent.deploy` is the control plane's side and is never uploaded.
See PROTOCOL.md for the contract with the API.
"""

AGENT_VERSION = "0.1.0"
