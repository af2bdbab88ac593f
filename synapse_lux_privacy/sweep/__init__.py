"""The sweep engine: rules that find what is due, and the orchestrator that deletes it."""
