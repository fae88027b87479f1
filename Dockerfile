# Image for every Naboria process role (web, worker, beat, drain); the command picks the role.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 NABORIA_VAR_DIR=/var/lib/naboria
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# Static files are baked into the image so every web container serves them without a volume.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && useradd --system --home /app naboria && chown -R naboria /var/lib/naboria
USER naboria

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "naboria.asgi:application"]
