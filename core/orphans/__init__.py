"""Provider instances no live machine owns: how one is recognised, and the record of when
each was first seen (the grace period runs from there)."""
