"""The operator's commands that talk to a running server's admin API (R14, sweeps).

``synapse-lux-privacy sweep`` starts a background sweep and follows it;
``synapse-lux-privacy report`` prints a user's R14 report. Standard library HTTP
(``urllib``) and ``rich`` for the terminal; nothing here imports Synapse.
"""
