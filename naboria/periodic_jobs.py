"""Every periodic job of Naboria, in one place, each with the reason it exists.

Celery beat (``celery -A naboria beat``) runs this schedule; naboria.celery installs it.
"""

from celery.schedules import crontab

PERIODIC_JOBS = {
    # Rotated site secrets verify tokens only during their grace period; afterwards the key
    # material has no purpose and should not linger in the database.
    "purge-expired-site-secrets": {
        "task": "sites.tasks.purge_expired_site_secrets",
        "schedule": crontab(minute=17),
    },
    # Cookieless visitor ids are only unlinkable across days if yesterday's salt is gone.
    "purge-old-daily-salts": {
        "task": "ingest.tasks.purge_old_daily_salts",
        "schedule": crontab(minute=5),
    },
    # Each decision is mirrored right after it is recorded; this catches up the ones whose
    # mirroring failed (ClickHouse down), so consent-rate reports end up complete.
    "mirror-consent-records": {
        "task": "consent.tasks.mirror_consent_records",
        "schedule": crontab(minute="*"),
    },
    # Decision records are personal data kept as proof of consent: they go once their
    # retention period (CONSENT_RECORD_RETENTION_DAYS or the banner's own) is over.
    "purge-consent-records": {
        "task": "consent.tasks.purge_consent_records",
        "schedule": crontab(hour=2, minute=40),
    },
    # The IAB republishes its Global Vendor List weekly and TCF banners must show a current
    # one; daily, so a failed fetch is retried long before the list counts as stale
    # (TCF_VENDOR_LIST_MAX_AGE_DAYS).
    "refresh-vendor-list": {
        "task": "consent.tasks.refresh_vendor_list",
        "schedule": crontab(hour=4, minute=20),
    },
    # Session reports scan one row per visit; visits that changed since the last refresh are
    # computed from raw events on every query, so refreshing often keeps that share small.
    "refresh-session-facts": {
        "task": "analytics.tasks.refresh_session_facts",
        "schedule": crontab(minute="*"),
    },
    # A CPA campaign spends when a conversion is attributed to it, which only ClickHouse can
    # tell (ads.attribution): charging every minute keeps its budget binding within minutes.
    "count-ad-conversions": {
        "task": "ads.tasks.count_conversions_spend",
        "schedule": crontab(minute="*"),
    },
    # Recommendations serve each site's most visited pages of the last 7 days from a list in
    # Redis (a ClickHouse query per request would be far too slow for a widget on every page);
    # rebuilt every 5 minutes, so a page that becomes popular is recommended within minutes.
    "refresh-popular-pages": {
        "task": "recs.tasks.refresh_popular_pages",
        "schedule": crontab(minute="*/5"),
    },
    # Tells site owners which cookies and trackers their pages set before consent. Hourly, it
    # queues a scan of each scheduled site whose last one is older than SCAN_INTERVAL_HOURS
    # (weekly by default), so the interval is a setting and a missed hour loses nothing.
    "scan-due-sites": {
        "task": "scans.tasks.scan_due_sites",
        "schedule": crontab(minute=41),
    },
    # The models learn from the traffic until yesterday: rebuild the dbt marts (and run their
    # tests), export them, retrain the CTR and conversion models, and promote each one only if
    # it beats the serving model on the same validation days. One job, as the steps must run
    # in that order; at night, when ad traffic is lowest.
    "refresh-models": {
        "task": "analytics.tasks.refresh_models",
        "schedule": crontab(hour=3, minute=30),
    },
}
