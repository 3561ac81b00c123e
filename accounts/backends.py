from django.contrib.auth.backends import ModelBackend


class EmailBackend(ModelBackend):
    """Password login by email, looked up through the email blind index.

    ModelBackend already calls `get_by_natural_key`, which the manager routes through the
    blind index; this subclass exists to name that contract and to accept `email=`.
    """

    def authenticate(self, request, username=None, password=None, email=None, **kwargs):
        return super().authenticate(request, username=username or email, password=password, **kwargs)
