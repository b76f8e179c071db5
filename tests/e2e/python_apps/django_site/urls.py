from django.urls import path

from django_site import views

urlpatterns = [
    path("greet/", views.greet),
]
