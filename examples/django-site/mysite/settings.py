"""Settings of Kraftwerk's example Django site. Everything site-specific comes from the environment Kraftwerk writes."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# An example: a real site sets its key with `kraftwerk env set DJANGO_SECRET_KEY=...`.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "kraftwerk-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
# The leading dot also allows the subdomains: previews answer at NAME.django-site.test
# (kraftwerk deploy --preview NAME).
ALLOWED_HOSTS = [".django-site.test", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "notes",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# The postgres service gives the site its own database and role, reached over the
# local socket with peer authentication: no password.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("POSTGRES_DATABASE", "django-site"),
        "USER": os.environ.get("POSTGRES_USER", ""),
        "HOST": "/var/run/postgresql",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "/static/"
# Filled by `manage.py collectstatic` (a release command); nginx serves it.
STATIC_ROOT = BASE_DIR / "static"

USE_TZ = True
TIME_ZONE = "UTC"
