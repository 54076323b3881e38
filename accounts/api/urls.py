from django.urls import path

from accounts.api.views import AuthViewSet, SessionViewSet, SignupViewSet

urlpatterns = [
    path("users", SignupViewSet.as_view({"post": "create"}), name="signup"),
    path("users/me", SessionViewSet.as_view({"get": "me"}), name="me"),
    path("users/me/password", SessionViewSet.as_view({"post": "change_password"}), name="change-password"),
    path("users/lookup", SessionViewSet.as_view({"get": "lookup"}), name="user-lookup"),
    path("auth/login", AuthViewSet.as_view({"post": "login"}), name="login"),
    path("auth/refresh", AuthViewSet.as_view({"post": "refresh"}), name="token-refresh"),
    path("auth/logout", SessionViewSet.as_view({"post": "logout"}), name="logout"),
]
