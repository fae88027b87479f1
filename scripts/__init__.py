"""Developer and CI scripts (test services, browser install, data refresh)."""
