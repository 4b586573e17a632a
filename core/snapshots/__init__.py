"""The control plane's side of snapshots: the object store (boto3), the per-owner chunk index,
manifests, the sessions that drive the engine on a machine, retention, garbage collection and
cost. The engine itself is `agent.snapshot`; `tree.root_hash` is shared with it.
"""
