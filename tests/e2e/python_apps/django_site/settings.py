"""Settings of the test project: DEBUG off, any Host, no database, no
sessions. The CSRF secret lives in the csrftoken cookie, so the worker (user
nobody) never writes anything."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "canopy-e2e-not-a-secret-only-for-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = []
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "django_site.urls"
WSGI_APPLICATION = "django_site.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],
    "APP_DIRS": False,
    "OPTIONS": {},
}]

DATABASES = {}
USE_TZ = True
TIME_ZONE = "UTC"
