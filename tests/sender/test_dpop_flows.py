"""DPoP-bound tokens end to end (RFC 9449): the development provider, the demo API and our clients, over HTTP."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import webtest

from pyramid_tokens import TokenManager
from pyramid_tokens.dpop import DPoPKey
from pyramid_tokens.devidp import DevClient
from tests.support.provider import WEB_REDIRECT_URI, authorize_url, browser_login, pkce_pair, standard_clients
from pyramid_tokens.stores import MemoryStore
from tests.support.web import base_settings, build_app, login

FULL_SCOPE = "openid profile email offline_access api"
ORDERS = "https://orders.example.test/"


def clients(lifetime=300):
    return [*standard_clients(),
            DevClient("dpop-worker", "worker-secret", grant_types=["client_credentials"], scopes="api",
                      dpop_bound_access_tokens=True, access_token_lifetime=lifetime),
            DevClient("spa", redirect_uris=[WEB_REDIRECT_URI], scopes=FULL_SCOPE)]


def claims(token) -> dict:
    return jwt.decode(getattr(token, "access_token", token), options={"verify_signature": False})


def worker(idp, api=None, clock=None, **extra):
    settings = {
        "tokens.clients.worker.authority": idp.issuer,
        "tokens.clients.worker.client_id": "dpop-worker",
        "tokens.clients.worker.client_secret": "worker-secret",
        "tokens.clients.worker.dpop": "true",
        **({"tokens.http.api.base_url": api.url + "/api/", "tokens.http.api.token": "client:worker"} if api else {}),
        **extra,
    }
    return TokenManager.from_settings(settings, **({"clock": clock} if clock else {}))


def errors(idp, name="use_dpop_nonce"):
    return idp.provider.counters()["token_errors"].get(name, 0)


def test_client_tokens_are_dpop_bound_and_the_api_accepts_them_with_proofs(make_idp, make_api):
    idp = make_idp(clients=clients())
    api = make_api(idp)
    tm = worker(idp, api)
    token = tm.get_client_access_token("worker")
    assert token.token_type == "DPoP" and token.authorization.startswith("DPoP ")
    assert claims(token)["cnf"] == {"jkt": token.dpop_key.thumbprint}
    reply = tm.http_client("api").get("whoami")
    assert reply.status_code == 200 and reply.history == []
    assert reply.json()["claims"]["cnf"]["jkt"] == token.dpop_key.thumbprint
    assert reply.request.headers["Authorization"] == token.authorization
    proof = jwt.decode(reply.request.headers["DPoP"], options={"verify_signature": False})
    assert proof["htm"] == "GET" and proof["htu"] == api.url + "/api/whoami" and "ath" in proof
    # the cached token keeps its key: renewals from the cache prove with the same key
    assert tm.get_client_access_token("worker").dpop_key == token.dpop_key


def test_a_configured_pem_key_is_used_and_a_client_that_must_use_dpop_cannot_skip_it(make_idp, keys):
    idp = make_idp(clients=clients())
    tm = worker(idp, **{"tokens.clients.worker.dpop": keys.ec_pem})
    assert tm.get_client_access_token("worker").dpop_key == DPoPKey.from_file(keys.ec_pem)
    plain = requests.post(idp.issuer + "/token", data={"grant_type": "client_credentials"},
                          auth=("dpop-worker", "worker-secret"), timeout=5)
    assert plain.status_code == 400 and plain.json()["error"] == "invalid_dpop_proof"


def test_the_api_refuses_a_dpop_token_without_a_valid_proof_of_its_key(make_idp, make_api):
    idp = make_idp(clients=clients())
    api = make_api(idp)
    url = api.url + "/api/whoami"
    token = worker(idp).get_client_access_token("worker")

    def call(scheme="DPoP", proof=None):
        headers = {"Authorization": f"{scheme} {token.access_token}", **({"DPoP": proof} if proof else {})}
        return requests.get(url, headers=headers, timeout=5)

    def refused(reply, error):
        assert reply.status_code == 401, reply.text
        assert reply.headers["WWW-Authenticate"].startswith("DPoP ")
        assert reply.json()["error"] == error

    good = token.dpop_proof("GET", url)
    assert call(proof=good).status_code == 200
    refused(call(proof=good), "invalid_dpop_proof")  # replayed proof (jti)
    refused(call("Bearer"), "invalid_token")  # a bound token used as a bearer token (RFC 9449 §7.2)
    refused(call(), "invalid_dpop_proof")  # no proof
    other = DPoPKey.generate()
    refused(call(proof=other.proof("GET", url, access_token=token.access_token)), "invalid_token")  # another key
    refused(call(proof=token.dpop_key.proof("GET", url, access_token="another token")), "invalid_dpop_proof")  # ath
    refused(call(proof=token.dpop_key.proof("POST", url, access_token=token.access_token)), "invalid_dpop_proof")
    refused(call(proof=token.dpop_proof("GET", api.url + "/api/other")), "invalid_dpop_proof")  # htu
    refused(call(proof=token.dpop_key.proof("GET", url, access_token=token.access_token, now=time.time() - 600)),
            "invalid_dpop_proof")  # iat


def test_token_endpoint_nonce_one_retry_and_the_nonce_is_remembered(make_idp):
    idp = make_idp(clients=clients(), require_dpop_nonce=True)
    tm = worker(idp)
    token = tm.get_client_access_token("worker")
    assert token.token_type == "DPoP"
    assert errors(idp) == 1  # the first proof had no nonce: 400 use_dpop_nonce + DPoP-Nonce, one retry
    tm.get_client_access_token("worker", force_renewal=True)
    assert errors(idp) == 1  # remembered for the provider's origin
    idp.provider.dpop.rotate_nonce()
    idp.provider.dpop.rotate_nonce()  # the remembered nonce is now too old
    tm.get_client_access_token("worker", force_renewal=True)
    assert errors(idp) == 2
    assert idp.provider.counters()["token"]["client_credentials"] == 3


def test_api_nonce_one_retry_for_any_method_and_remembered_per_origin(make_idp, make_api):
    idp = make_idp(clients=clients())
    api = make_api(idp, require_dpop_nonce=True)
    tm = worker(idp, api)
    first = tm.http_client("api").get("whoami")
    assert first.status_code == 200
    assert [(r.status_code, r.headers["DPoP-Nonce"]) for r in first.history] == [(401, api.proofs.nonce())]
    assert 'error="use_dpop_nonce"' in first.history[0].headers["WWW-Authenticate"]
    assert jwt.decode(first.request.headers["DPoP"], options={"verify_signature": False})["nonce"] == api.proofs.nonce()
    assert tm.http_client("api").get("whoami").history == []
    api.proofs.rotate_nonce()
    api.proofs.rotate_nonce()
    posted = tm.http_client("api").post("whoami", data={"a": "1"})  # POST: a nonce challenge is safe to answer
    assert posted.status_code == 200 and [r.status_code for r in posted.history] == [401]
    assert idp.provider.counters()["token"]["client_credentials"] == 1  # a nonce is no reason to renew


def test_an_expired_token_is_renewed_and_the_new_nonce_answered_in_one_call(make_idp, make_api, clock):
    idp = make_idp(clients=clients(lifetime=1))
    api = make_api(idp, require_dpop_nonce=True)
    tm = worker(idp, api, clock=clock)
    assert tm.http_client("api").get("whoami").status_code == 200
    api.proofs.rotate_nonce()
    api.proofs.rotate_nonce()
    time.sleep(1.2)  # the API's clock passes the token's exp; ours stands still
    reply = tm.http_client("api").get("whoami")
    assert reply.status_code == 200
    assert [r.json()["error"] for r in reply.history] == ["invalid_token", "use_dpop_nonce"]
    assert idp.provider.counters()["token"]["client_credentials"] == 2


def test_user_login_binds_code_tokens_and_userinfo_to_the_logins_key(make_idp, make_api):
    idp = make_idp(clients=clients())
    api = make_api(idp)
    settings = base_settings(idp, **{"oidc.dpop": "true", "tokens.http.api.base_url": api.url + "/api/",
                                     "tokens.http.api.token": "user"})
    app = webtest.TestApp(build_app(settings))
    start = app.get("/login")
    jkt = parse_qs(urlsplit(start.location).query)["dpop_jkt"][0]
    callback = urlsplit(browser_login(start.location, "alice"))
    app.get(callback.path + "?" + callback.query)
    token = app.get("/token").json
    assert claims(token["access_token"])["cnf"] == {"jkt": jkt}
    assert idp.provider.counters()["userinfo"] == 1  # userinfo accepted the DPoP token and its proof
    store = app.app.registry["pyramid_tokens.manager"].user_tokens.store
    (record,) = [v for k, v in store.items() if not k.startswith("rotated:")]
    assert DPoPKey.from_jwk(record["dpop_key"]).thumbprint == jkt  # the key lives with the tokens
    called = app.get("/call-api").json
    assert called["status"] == 200 and called["body"]["sub"] == "alice"
    renewed = app.get("/token", params={"force": "1"}).json
    assert renewed["access_token"] != token["access_token"]
    assert claims(renewed["access_token"])["cnf"] == {"jkt": jkt}  # refreshed with the same key
    bearer = requests.get(api.url + "/api/whoami", headers={"Authorization": "Bearer " + renewed["access_token"]},
                          timeout=5)
    assert bearer.status_code == 401
    other = webtest.TestApp(build_app(settings))
    login(other, "bob")
    assert claims(other.get("/token").json["access_token"])["cnf"]["jkt"] != jkt  # a fresh key per login


def test_another_process_proves_with_the_key_stored_with_the_users_tokens(make_idp, make_api):
    idp = make_idp(clients=clients(), device_auto_approve="carol", device_interval=0)
    api = make_api(idp)
    settings = {"oidc.authority": idp.issuer, "oidc.client_id": "web", "oidc.client_secret": "web-secret",
                "oidc.scope": FULL_SCOPE, "oidc.dpop": "true",
                "tokens.http.api.base_url": api.url + "/api/", "tokens.http.api.token": "user"}
    shared = MemoryStore()  # stands for Redis or the session store shared by worker processes
    first = TokenManager.from_settings(settings, user_store=shared)
    token = first.device_login(display=lambda authorization: None, sleep=lambda seconds: None)
    jkt = claims(token)["cnf"]["jkt"]
    second = TokenManager.from_settings(settings, user_store=shared)
    renewed = second.get_user_access_token(force_renewal=True)
    assert renewed.access_token != token.access_token and renewed.dpop_key.thumbprint == jkt
    assert claims(renewed)["cnf"]["jkt"] == jkt
    assert second.http_client("api").get("whoami").json()["sub"] == "carol"
    assert first.http_client("api").get("whoami").json()["sub"] == "carol"  # with the token the other one renewed


def test_resource_indicators_with_dpop_for_clients_and_users(make_idp, make_api):
    idp = make_idp(clients=clients(), device_auto_approve="dave", device_interval=0)
    orders_api = make_api(idp, audience=ORDERS)
    tm = worker(idp, orders_api, **{"tokens.clients.worker.resource": ORDERS})
    client_token = tm.get_client_access_token("worker")
    assert claims(client_token)["aud"] == ORDERS and client_token.resource == ORDERS
    assert tm.http_client("api").get("whoami").status_code == 200
    assert claims(tm.get_client_access_token("worker", resource="https://other.example.test/"))["aud"] == \
        "https://other.example.test/"
    users = TokenManager.from_settings({"oidc.authority": idp.issuer, "oidc.client_id": "web",
                                        "oidc.client_secret": "web-secret", "oidc.scope": FULL_SCOPE,
                                        "oidc.dpop": "true"})
    login_token = users.device_login(display=lambda authorization: None, sleep=lambda seconds: None)
    orders = users.get_user_access_token(resource=ORDERS)
    assert claims(orders)["aud"] == ORDERS and orders.resource == ORDERS
    assert claims(orders)["cnf"] == claims(login_token)["cnf"]  # the login's key for every resource
    url = orders_api.url + "/api/whoami"
    reply = requests.get(url, headers={"Authorization": orders.authorization, "DPoP": orders.dpop_proof("GET", url)},
                         timeout=5)
    assert reply.status_code == 200 and reply.json()["sub"] == "dave"
    assert users.get_user_access_token(resource=ORDERS) == orders  # cached per resource


def test_public_clients_code_and_refresh_token_are_bound_to_the_key(make_idp):
    """RFC 9449 §10 (dpop_jkt) and §5 (refresh tokens of public clients), at the provider, over raw HTTP."""
    idp = make_idp(clients=clients())
    key, other = DPoPKey.generate(), DPoPKey.generate()
    verifier, challenge = pkce_pair()
    location = browser_login(authorize_url(idp.issuer, client_id="spa", scope=FULL_SCOPE, code_challenge=challenge,
                                           dpop_jkt=key.thumbprint))
    code = parse_qs(urlsplit(location).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": WEB_REDIRECT_URI, "client_id": "spa"}
    token_url = idp.issuer + "/token"

    def post(data, proof_key=None):
        headers = {"DPoP": proof_key.proof("POST", token_url)} if proof_key else {}
        return requests.post(token_url, data=data, headers=headers, timeout=5)

    assert post(form).json()["error"] == "invalid_grant"
    assert post(form, other).json()["error"] == "invalid_grant"
    granted = post(form, key)
    assert granted.status_code == 200 and granted.json()["token_type"] == "DPoP"
    refresh = {"grant_type": "refresh_token", "refresh_token": granted.json()["refresh_token"], "client_id": "spa"}
    assert post(refresh, other).json()["error"] == "invalid_grant"
    assert post(refresh).json()["error"] == "invalid_grant"
    renewed = post(refresh, key)
    assert renewed.status_code == 200 and claims(renewed.json()["access_token"])["cnf"]["jkt"] == key.thumbprint
    userinfo = idp.issuer + "/userinfo"
    access = renewed.json()["access_token"]
    good = requests.get(userinfo, timeout=5, headers={
        "Authorization": f"DPoP {access}", "DPoP": key.proof("GET", userinfo, access_token=access)})
    assert good.status_code == 200 and good.json()["sub"] == "alice"
    as_bearer = requests.get(userinfo, headers={"Authorization": f"Bearer {access}"}, timeout=5)
    assert as_bearer.status_code == 401


@pytest.mark.parametrize("setting", ["tokens.clients.w.dpop", None])
def test_dpop_is_off_unless_configured(make_idp, setting):
    idp = make_idp()
    extra = {setting: "false"} if setting else {}
    tm = TokenManager.from_settings({"tokens.clients.w.authority": idp.issuer, "tokens.clients.w.client_id": "worker",
                                     "tokens.clients.w.client_secret": "worker-secret", **extra})
    token = tm.get_client_access_token("w")
    assert token.token_type == "Bearer" and token.dpop_key is None and "cnf" not in claims(token)
