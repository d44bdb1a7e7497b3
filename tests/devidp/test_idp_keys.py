"""Key rotation: a new key signs from then on; the old key stays published unless dropped."""
from __future__ import annotations

import jwt
import requests

from .flows import client_credentials, code_flow, verify


def kids(idp) -> list[str]:
    return [key["kid"] for key in requests.get(idp.issuer + "/jwks", timeout=5).json()["keys"]]


def test_rotated_key_signs_new_tokens_and_the_old_key_stays_published(idp):
    (old_kid,) = kids(idp)
    old_token = client_credentials(idp).json()["access_token"]
    new_kid = idp.provider.rotate_keys()
    assert kids(idp) == [new_kid, old_kid]
    new_token = client_credentials(idp).json()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert verify(idp, new_token, "api")["sub"] == "worker"
    assert verify(idp, old_token, "api")["sub"] == "worker"  # still verifiable with the kept key


def test_rotation_without_keep_old_drops_the_old_key_and_its_tokens_stop_verifying(idp):
    old_token = code_flow(idp)["access_token"]
    new_kid = idp.provider.rotate_keys(keep_old=False)
    assert kids(idp) == [new_kid]
    userinfo = requests.get(idp.issuer + "/userinfo", headers={"Authorization": f"Bearer {old_token}"}, timeout=5)
    assert userinfo.status_code == 401


def test_dev_endpoint_rotates_keys_over_http(idp):
    (old_kid,) = kids(idp)
    response = requests.post(idp.issuer + "/dev/rotate-keys", timeout=5)
    assert response.status_code == 200
    assert response.json()["keep_old"] is True
    assert kids(idp) == [response.json()["kid"], old_kid]
    dropped = requests.post(idp.issuer + "/dev/rotate-keys", data={"keep_old": "false"}, timeout=5).json()
    assert kids(idp) == [dropped["kid"]]
