"""The served API of this project's model (fixture `mloop_client`, an in-process server):
one prediction, a batch, and a bad row refused with 422."""

from mloop.testing import check_api_payloads


def test_api_payloads(mloop_client):
    check_api_payloads(mloop_client)
