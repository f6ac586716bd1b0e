from django.urls import path

from relay import views

app_name = "relay"

urlpatterns = [
    path("spaces/<slug:slug>/requests/", views.submit, name="submit"),
    path("requests/", views.my_requests, name="my_requests"),
    path("api/spaces/<slug:slug>/", views.space_api, name="space_api"),
    path("api/requests/<uuid:request_id>/", views.request_api, name="request_api"),
    path("api/requests/<uuid:request_id>/cancel/", views.cancel_api, name="cancel"),
    path("api/requests/<uuid:request_id>/files/<uuid:file_id>/", views.result_file, name="result_file"),
    path("relay/files/<str:signed>/", views.input_file, name="input_file"),
    path("healthz", views.healthz, name="healthz"),
]
