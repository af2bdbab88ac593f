"""Proof for the data-protection officer (issue #24): signed certificates of sweeps and
erasures, and their offline verification (docs/proof.md)."""
