"""Organizations, their members and roles, sites, site secrets and API tokens (tenancy)."""
