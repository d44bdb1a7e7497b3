"""A DPoP proof is for one method and URI: a redirect gets a new proof, or none when the token is dropped."""
from __future__ import annotations

from urllib.parse import parse_qs

import jwt

from pyramid_tokens.devidp.server import serve
from pyramid_tokens.dpop import DPoPKey
from pyramid_tokens.httpclient import NamedClient
from pyramid_tokens.tokens import AccessToken


class Recorder:
    """``/go?to=URL`` redirects (302) to URL; every request's Authorization and DPoP headers are recorded."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def __call__(self, environ, start_response):
        self.seen.append({"path": environ["PATH_INFO"], "authorization": environ.get("HTTP_AUTHORIZATION"),
                          "dpop": environ.get("HTTP_DPOP")})
        if environ["PATH_INFO"] == "/go":
            start_response("302 Found", [("Location", parse_qs(environ["QUERY_STRING"])["to"][0]), ("Content-Length", "0")])
            return [b""]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


def htu_of(proof: str) -> str:
    return jwt.decode(proof, options={"verify_signature": False})["htu"]


def test_a_same_origin_redirect_gets_a_new_proof_and_another_origin_gets_neither_token_nor_proof():
    home, elsewhere = Recorder(), Recorder()
    home_server, other_server = serve(home), serve(elsewhere)
    try:
        token = AccessToken("tok", token_type="DPoP", dpop_key=DPoPKey.generate())
        session = NamedClient("api", home_server.url + "/").session(lambda force: token)
        assert session.get("go", params={"to": home_server.url + "/landing"}).status_code == 200
        first, landed = home.seen
        assert first["authorization"] == landed["authorization"] == "DPoP tok"
        assert htu_of(first["dpop"]) == home_server.url + "/go"
        assert htu_of(landed["dpop"]) == home_server.url + "/landing"
        assert session.get("go", params={"to": other_server.url + "/x"}).status_code == 200
        assert elsewhere.seen == [{"path": "/x", "authorization": None, "dpop": None}]
    finally:
        home_server.stop()
        other_server.stop()
