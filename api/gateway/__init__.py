"""The serverless gateway: `/serverless/{machine_id}/{path}` forwarded to the machine's service,
held in a bounded queue while the machine resumes (DESIGN.md §5). Mounted on the API, or run
as its own process (`dumont gateway`)."""
