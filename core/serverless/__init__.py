"""Serverless endpoints in the database: the gateway's configuration per machine, the hashed
endpoint keys, and the cold starts the gateways measured."""
