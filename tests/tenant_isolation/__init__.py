"""The read API's tenant isolation, tried from outside as an attacker would: requests and exports of
three organizations' keys against one served world per module (conftest.py)."""
