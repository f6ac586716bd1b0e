from django.urls import path

from spaces import views

app_name = "spaces"

urlpatterns = [
    path("", views.space_list, name="list"),
    path("spaces/<slug:slug>/", views.space_detail, name="detail"),
]
