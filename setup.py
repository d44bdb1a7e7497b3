"""Packaging for pyramid_tokens: OAuth 2.0 / OpenID Connect token management for Pyramid and plain Python."""
import os

from setuptools import find_packages, setup

here = os.path.abspath(os.path.dirname(__file__))
with open(os.path.join(here, "README.md"), encoding="utf-8") as f:
    README = f.read()

requires = [
    "pyramid>=2.0",
    "webob>=1.8",
    "requests>=2.31",
    "urllib3>=2.0",
    "oauthlib>=3.2",
    "beaker>=1.12",
    "pyramid_beaker>=0.8",
    "PyJWT[crypto]>=2.8",
    "cryptography>=41",
]

extras = {
    # the demo app and the development provider are served by waitress (pserve development.ini)
    "demo": ["waitress>=2.1"],
    "redis": ["redis>=5.0"],
    # metrics through the OpenTelemetry API (pyramid_tokens.metrics); without it nothing is recorded
    "otel": ["opentelemetry-api>=1.20"],
    "notebooks": ["nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29"],
}
extras["testing"] = [
    "pytest>=8.0",
    "pytest-xdist>=3.5",
    "WebTest>=3.0",
    "hypothesis>=6.100",
    "opentelemetry-sdk>=1.20",
    # tests/browser/ drive headless Chromium (Debian's chromium and chromium-driver packages)
    "selenium>=4.15",
    *extras["demo"],
    *extras["otel"],
    *extras["redis"],
    *extras["notebooks"],
]
extras["benchmarks"] = ["Authlib>=1.3", "WebTest>=3.0", *extras["demo"], *extras["redis"]]

setup(
    name="pyramid_tokens",
    version="0.1.0",
    description="OAuth 2.0 / OpenID Connect token management for Pyramid web apps and plain Python",
    long_description=README,
    long_description_content_type="text/markdown",
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Framework :: Pyramid",
        "Topic :: Internet :: WWW/HTTP :: WSGI",
        "Topic :: Security",
    ],
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks"]),
    include_package_data=True,
    package_data={"pyramid_tokens": ["py.typed"]},
    zip_safe=False,
    install_requires=requires,
    extras_require=extras,
    entry_points={
        "paste.app_factory": ["main = pyramid_tokens.demo:main"],
        "console_scripts": ["pyramid-tokens-devidp = pyramid_tokens.devidp.__main__:main"],
        # session.type = redis_json: Beaker sessions in Redis without pickle (pyramid_tokens.redis.sessions)
        "beaker.backends": ["redis_json = pyramid_tokens.redis.sessions:JsonRedisNamespaceManager"],
    },
)
