"""Apps import downward only, and not around the rule: no import of a first-party module inside
a function, where it would hide a cycle from a reader (import-linter sees such imports and
checks the layers of .importlinter, run by ``make lint``; this test keeps them from being
written at all).

Function-local imports of heavy third-party libraries (mlflow, pandas, confluent_kafka,
clickhouse_connect, mongoengine, dbt), made for lazy loading, are not concerned.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from configparser import ConfigParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = (
    "sites",
    "consent",
    "tags",
    "ingest",
    "ads",
    "recs",
    "analytics",
    "scans",
    "events",
    "naboria",
)

# (file, function, imported module) -> why it may stay in the function.
ALLOWED = {
    # Composition root. naboria.celery is imported while the settings module itself loads
    # (naboria/__init__): what its hooks import runs later, in a worker, after django.setup().
    ("naboria/celery.py", "DrainStep.start", "ingest.drain"): "worker start, after setup",
    ("naboria/celery.py", "_check_backends_before_work", "naboria.health"): "worker_init",
    # Composition root: the embedded beat's thread, started by naboria.asgi after setup.
    ("naboria/embedded_beat.py", "_run", "naboria.celery"): "beat thread, after setup",
    ("naboria/embedded_beat.py", "_run", "naboria.periodic_jobs"): "beat thread, after setup",
    ("naboria/embedded_beat.py", "run_due_jobs", "naboria.celery"): "beat thread, after setup",
    # Django's place for an app to connect its receivers: the models they use are loaded only
    # when ready() runs, not when apps.py is imported.
    ("consent/apps.py", "ConsentConfig.ready", "consent.receivers"): "AppConfig.ready",
    ("consent/apps.py", "ConsentConfig.ready", "consent.checks"): "AppConfig.ready",
    ("recs/apps.py", "RecsConfig.ready", "recs.receivers"): "AppConfig.ready",
    # Lazy loading of the ML stack (XGBoost, pandas, pyarrow, MLflow), as for a heavy
    # third-party library: every process that registers the Celery tasks imports this module.
    ("analytics/tasks.py", "build_feature_marts", "analytics.ml"): "lazy ML stack",
    ("analytics/tasks.py", "train_model", "analytics.ml"): "lazy ML stack",
    ("analytics/tasks.py", "train_model", "analytics.ml.training"): "lazy ML stack",
}


def _is_first_party(module: str) -> bool:
    return module.split(".", 1)[0] in FIRST_PARTY


def _imported_modules(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif node.level:
        yield "." * node.level + (node.module or "")  # relative: first party by definition
    else:
        yield node.module or ""


def _local_imports(tree: ast.Module) -> Iterator[tuple[str, int, str]]:
    """(function qualname, line, module) of each import inside a function."""

    def walk(node: ast.AST, scope: list[str], in_function: bool) -> Iterator[tuple[str, int, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom) and in_function:
                for module in _imported_modules(child):
                    yield ".".join(scope), child.lineno, module
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from walk(child, [*scope, child.name], True)
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, [*scope, child.name], in_function)
            else:
                yield from walk(child, scope, in_function)

    return walk(tree, [], False)


def _first_party_local_imports() -> list[tuple[str, str, int, str]]:
    found = []
    for package in FIRST_PARTY:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(), filename=relative)
            for function, line, module in _local_imports(tree):
                if module.startswith(".") or _is_first_party(module):
                    found.append((relative, function, line, module))
    return found


def test_no_function_local_import_of_a_first_party_module():
    found = _first_party_local_imports()
    unexpected = [
        f"{path}:{line}: import of {module} inside {function}()"
        for path, function, line, module in found
        if (path, function, module) not in ALLOWED
    ]
    assert not unexpected, (
        "Import first-party modules at module level; if that makes a cycle, fix the structure "
        "(.importlinter shows the layers):\n" + "\n".join(unexpected)
    )


def test_every_allowed_local_import_still_exists():
    found = {(path, function, module) for path, function, _, module in _first_party_local_imports()}
    assert not set(ALLOWED) - found, "remove these entries from ALLOWED"


def test_the_detector_sees_imports_in_nested_functions_and_methods():
    tree = ast.parse(
        "import ads\n"
        "def outer():\n"
        "    def inner():\n"
        "        from ingest.http import Refusal\n"
        "class Thing:\n"
        "    def method(self):\n"
        "        from . import sibling\n"
        "        import mlflow\n"
    )
    assert list(_local_imports(tree)) == [
        ("outer.inner", 4, "ingest.http"),
        ("Thing.method", 7, "."),
        ("Thing.method", 8, "mlflow"),
    ]


def test_every_naboria_module_has_a_layer():
    """The project package mixes the composition root and infrastructure: each of its modules
    must be named in a layer of .importlinter, or the contract would not check it."""
    config = ConfigParser()
    config.read(ROOT / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"]
    named = {name.strip().strip("()") for line in layers.splitlines() for name in line.split(":")}
    modules = {
        f"naboria.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "naboria").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert modules - named == set()


# What the restructure keeps: sites no longer imports consent, yet a site created by
# sites.services or in the admin still gets its default banner (consent receives
# sites.signals.site_created), and only those.


@pytest.mark.django_db
def test_a_site_created_by_the_service_gets_its_banner(organization):
    from consent.models import ConsentBanner
    from consent.services import DEFAULT_PURPOSES
    from sites.services import site_create

    site = site_create(organization=organization, name="Shop", allowed_domains=["shop.example"])
    banner = ConsentBanner.objects.get(site=site)
    assert sorted(banner.purposes.values_list("key", flat=True)) == sorted(
        purpose["key"] for purpose in DEFAULT_PURPOSES
    )
    assert list(banner.texts.values_list("language", flat=True)) == ["en"]


@pytest.mark.django_db
def test_a_site_added_in_the_admin_gets_its_banner(admin_client, organization):
    from consent.models import ConsentBanner
    from sites.models import Site

    response = admin_client.post(
        "/admin/sites/site/add/",
        {
            "organization": organization.pk,
            "name": "Admin shop",
            "allowed_domains": '["shop.example"]',
            "timezone": "UTC",
            "retention_days": 90,
            "secrets-TOTAL_FORMS": 0,
            "secrets-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302
    site = Site.objects.get(name="Admin shop")
    assert ConsentBanner.objects.filter(site=site).count() == 1


def test_a_site_saved_otherwise_gets_no_banner(site):
    from consent.models import ConsentBanner

    assert not ConsentBanner.objects.filter(site=site).exists()
