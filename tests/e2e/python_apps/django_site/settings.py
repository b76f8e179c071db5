"""Settings of the test project: DEBUG off, any Host, no database, no
sessions. The CSRF secret lives in the csrftoken cookie, so the worker (user
nobody) never writes anything. Static files are collected (collectstatic)
into CANOPY_DJANGO_STATIC_ROOT and served by canopyd's `share`, as a
production deployment does."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "canopy-e2e-not-a-secret-only-for-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = ["django.contrib.staticfiles"]
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

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = os.environ.get("CANOPY_DJANGO_STATIC_ROOT", str(BASE_DIR / "collected-static"))
