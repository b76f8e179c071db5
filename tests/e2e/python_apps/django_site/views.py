import os

from django.shortcuts import render


def greet(request):
    """GET: the form (with its CSRF token). POST: the form again, with the
    posted name; the CSRF middleware has refused it before if the token is
    missing or wrong."""
    name = request.POST.get("name") if request.method == "POST" else None
    return render(request, "greet.html", {"name": name, "pid": os.getpid()})
