from django.urls import path

from analytics.api import REPORTS, report_view
from analytics.segments_api import SegmentDetailView, SegmentListView

urlpatterns = [
    *(
        path(
            f"sites/<str:public_id>/reports/{name}",
            report_view(report),
            name=f"api-report-{name}",
        )
        for name, report in REPORTS.items()
    ),
    path("sites/<str:public_id>/segments", SegmentListView.as_view(), name="api-segment-list"),
    path(
        "sites/<str:public_id>/segments/<int:segment_id>",
        SegmentDetailView.as_view(),
        name="api-segment-detail",
    ),
]
