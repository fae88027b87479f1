"""App update events (events.schemas.UPDATE_EVENT_TYPES) belong to no visit: the
``page_event_visits`` view is made again with the visit rule that leaves them out
(events.visits). No column changes: their payload is kept in ``page_events.properties``."""

from events.visits import PAGE_EVENT_VISITS_VIEW_SQL

OPERATIONS = [PAGE_EVENT_VISITS_VIEW_SQL]
