# Image for every Naboria process role (web, worker, beat, drain); the command picks the role.

# The tracker bundles are built (and their size budgets enforced) in a Node stage of their own.
FROM node:20-bookworm-slim AS tracker
WORKDIR /tracker
COPY tracker/package.json tracker/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tracker/ ./
RUN node build.mjs

# The IP geolocation database (docs/geo.md), pinned in geodata/package-lock.json.
FROM node:20-bookworm-slim AS geodata
WORKDIR /geodata
COPY geodata/package.json geodata/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 NABORIA_VAR_DIR=/var/lib/naboria
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
# Chromium for the cookie and tracker scan (docs/scans.md): Playwright's headless shell of the
# pinned Playwright version, with the system libraries it needs, in a path every user reads.
ENV PLAYWRIGHT_BROWSERS_PATH=/opt/ms-playwright
RUN python -m playwright install --with-deps --only-shell chromium

COPY . .
COPY --from=tracker /tracker/dist tracker/dist
COPY --from=geodata /geodata/node_modules geodata/node_modules
# Static files are baked into the image so every web container serves them without a volume.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && useradd --system --home /app naboria && chown -R naboria /var/lib/naboria
USER naboria

EXPOSE 8000
CMD ["python", "-m", "naboria.web", "-b", "0.0.0.0", "-p", "8000", "naboria.asgi:application"]
