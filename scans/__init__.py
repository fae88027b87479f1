"""Cookie and tracker scans: what a site's pages set and load before and after consent, seen by
headless Chromium (docs/scans.md)."""
