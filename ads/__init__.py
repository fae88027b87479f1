"""Advertisers, campaigns, ads and placements; delivery documents, SSE streams, ad tracking."""
