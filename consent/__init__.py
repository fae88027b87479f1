"""Consent management: banner configuration, consent records, TCF v2.2 and Consent Mode."""
