"""Redis URLs for one server, Sentinel and Cluster: parsed and validated in one place (``redis/connect.py``)."""
from __future__ import annotations

import pytest

from pyramid_tokens import TokenManager
from pyramid_tokens.errors import ConfigurationError
from pyramid_tokens.redis.connect import parse_url


def test_a_sentinel_url_names_its_sentinels_service_database_and_password():
    url = parse_url("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2/tokens/2?socket_timeout=0.5&lock_lease=4")
    assert (url.topology, url.tls, url.service, url.db) == ("sentinel", False, "tokens", 2)
    assert url.hosts == (("10.0.0.1", 26379), ("10.0.0.2", 26379))  # the Sentinel port by default
    assert url.password == "s3cret" and url.timeouts == {"socket_timeout": 0.5} and url.lock_lease == 4
    assert url.where() == "sentinel tokens at 10.0.0.1:26379,10.0.0.2:26379/2"


def test_a_cluster_url_names_its_startup_nodes_and_takes_our_options():
    url = parse_url("rediss+cluster://[::1]:7000,node2:7001/?prefix=app:&wait_replicas=2&ssl_ca_certs=/ca.pem")
    assert (url.topology, url.tls, url.hosts) == ("cluster", True, (("::1", 7000), ("node2", 7001)))
    assert (url.prefix, url.wait_replicas, url.tls_options) == ("app:", 2, {"ssl_ca_certs": "/ca.pem"})


def test_the_password_is_in_no_repr_and_no_description():
    for text in ("redis+sentinel://user:s3cret@h:1/svc", "redis+cluster://:s3cret@h:1/"):
        url = parse_url(text)
        assert "s3cret" not in repr(url) and "s3cret" not in url.where()


@pytest.mark.parametrize("url, problem", [
    ("redis+sentinel://h:26379/", "service_name"),
    ("redis+sentinel://h:26379/svc/zero", "database must be a number"),
    ("redis+cluster://h:7000/3", "database 0 only"),
    ("redis+cluster://h:port/", "host:port"),
    ("redis+cluster://h:7000/?lock_lease=soon", "lock_lease: expected a number"),
    ("redis+sentinel://h/svc?socket_timeout=-1", "socket_timeout: must be positive"),
    ("redis+cluster://h:7000/?retry_forever=1", "unknown Redis URL options: retry_forever"),
    ("redis+shard://h:7000/", "unknown Redis URL scheme"),
])
def test_a_bad_url_is_a_configuration_error_naming_the_setting(url, problem):
    with pytest.raises(ConfigurationError) as caught:
        parse_url(url, "tokens.cache")
    assert caught.value.key == "tokens.cache" and problem in str(caught.value)


@pytest.mark.parametrize("setting", ["tokens.store", "tokens.cache"])
def test_the_manager_reports_a_bad_sentinel_url_under_the_setting_it_came_from(setting):
    settings = {"tokens.clients.w.token_endpoint": "https://idp.example/token", "tokens.clients.w.client_id": "w",
                "tokens.clients.w.client_secret": "x", setting: "redis+sentinel://:pw@h:26379/"}
    with pytest.raises(ConfigurationError) as caught:
        TokenManager.from_settings(settings)
    assert caught.value.key == setting and "pw" not in str(caught.value)
