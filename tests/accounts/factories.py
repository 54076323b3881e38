import factory
from django.contrib.auth.hashers import make_password

from accounts.models import User

PASSWORD = "correct horse battery"
_HASH = make_password(PASSWORD)  # hashed once: Argon2 is deliberately slow


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = _HASH
