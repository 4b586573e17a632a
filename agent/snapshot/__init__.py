"""The snapshot engine: runs on the machine, next to the data, driven by the control plane.

`python3 -m agent.snapshot create|restore --workspace DIR` speaks JSON lines: requests and
progress on stdout, answers (which chunks the store lacks, presigned URLs, the manifest) on
stdin. It never holds storage credentials. Standard library only; `zstandard` or the `zstd`
command are used when the machine has them (see codec.py).
"""

ENGINE_VERSION = 3
