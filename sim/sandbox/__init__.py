"""Sandbox machines: a directory, real processes, and a real SSH server per rented instance."""
