from django.urls import path

from analytics.api import REPORTS, report_view

urlpatterns = [
    path(
        f"sites/<str:public_id>/reports/{name}",
        report_view(report),
        name=f"api-report-{name}",
    )
    for name, report in REPORTS.items()
]
